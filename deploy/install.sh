#!/usr/bin/env bash
# DEIA Bot Controller: install on one Debian 12 host, as root, from this checkout.
#
#   deploy/install.sh            # first install, and every upgrade: safe to run again
#
# Takes a fresh host to a running installation: Debian packages, the `deia` system user,
# the code in /opt/deia with its venv (requirements.txt, pinned), the PostgreSQL role and
# database, /etc/deia/{secret_key,deia.env}, `manage.py setup` (migrate, static files into
# the folder nginx serves, the admin user, schedules), the systemd units, the nginx site,
# Redis' password and memory policy, Prometheus and its rules, Alertmanager (Debian reads
# /etc/prometheus/alertmanager.yml and /etc/default/prometheus-alertmanager's ARGS) and the
# exporters. Secrets are generated once and kept; a second run changes nothing and says
# so. Then run the checks of docs/OPS_BUNDLE.md.
#
# Variables (all optional):
#   DEIA_PREFIX=/tmp/x      re-root every path this script writes (/opt/deia, /etc/deia,
#                           /etc/prometheus, /etc/default, /etc/systemd/system, /var/lib/deia,
#                           /var/log/deia, ...) under /tmp/x, file contents included (tests).
#   DEIA_SKIP="apt systemd" skip steps, by name: apt user code venv secrets database env
#                           redis setup units nginx prometheus alertmanager exporters
#                           pgmonitor systemd (the last enables, restarts and checks services).
#   DEIA_PYTHON             Python 3.11 for the venv (/usr/bin/python3).
#   DEIA_DB_NAME, DEIA_DB_USER, DEIA_DB_HOST, DEIA_DB_PORT
#                           the app's database and role (deia, deia, 127.0.0.1, 5432). The
#                           role's password is generated once into /etc/deia/db_password.
#                           The role and database are made by psql as the OS user postgres.
#   DEIA_PGBOUNCER_PORT     PgBouncer's port (6432), used when deia.env has
#                           DATABASE_POOLER=pgbouncer (docs/PGBOUNCER.md): DATABASE_URL goes
#                           there and DATABASE_DIRECT_URL to PostgreSQL.
#   DEIA_REDIS_URL          use this Redis as is (no requirepass set up); by default Redis on
#                           127.0.0.1:6379 gets a generated password (/etc/deia/redis_password).
#   DEIA_SERVER_NAME        nginx server_name and ALLOWED_HOSTS (hostname -f). A self-signed
#                           certificate is made for it if none is in /etc/ssl: replace it.
#   DEIA_WEB_PORT (8000), DEIA_PROMETHEUS_PORT (9090), DEIA_ALERTMANAGER_PORT (9093),
#   DEIA_NODE_EXPORTER_PORT (9100), DEIA_POSTGRES_EXPORTER_PORT (9187),
#   DEIA_REDIS_EXPORTER_PORT (9121)
#                           loopback listen ports, written into every file that names them.
#   DEIA_BOT_PORTS          the bots' port range, BOT_PORT_RANGE (8001-8099).
#   DEIA_ADMIN_PASSWORD     the admin's password at the first install; by default one is
#                           generated into /etc/deia/admin_password (root only).
set -Eeuo pipefail
umask 022

SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
P=${DEIA_PREFIX:-}
P=${P%/}
SKIP=" ${DEIA_SKIP:-} "
PYTHON=${DEIA_PYTHON:-/usr/bin/python3}
DB_NAME=${DEIA_DB_NAME:-deia}
DB_USER=${DEIA_DB_USER:-deia}
DB_HOST=${DEIA_DB_HOST:-127.0.0.1}
DB_PORT=${DEIA_DB_PORT:-5432}
SERVER_NAME=${DEIA_SERVER_NAME:-$(hostname -f 2>/dev/null || hostname)}
WEB_PORT=${DEIA_WEB_PORT:-8000}
PROMETHEUS_PORT=${DEIA_PROMETHEUS_PORT:-9090}
ALERTMANAGER_PORT=${DEIA_ALERTMANAGER_PORT:-9093}
NODE_EXPORTER_PORT=${DEIA_NODE_EXPORTER_PORT:-9100}
POSTGRES_EXPORTER_PORT=${DEIA_POSTGRES_EXPORTER_PORT:-9187}
REDIS_EXPORTER_PORT=${DEIA_REDIS_EXPORTER_PORT:-9121}
BOT_PORTS=${DEIA_BOT_PORTS:-8001-8099}

OPT=$P/opt/deia
ETC=$P/etc/deia
VENV=$OPT/.venv
ENV_FILE=$ETC/deia.env
PACKAGES=(python3 python3-venv postgresql redis-server nginx openssl ca-certificates curl
  prometheus prometheus-alertmanager prometheus-node-exporter prometheus-postgres-exporter
  prometheus-redis-exporter)
UNITS=(deia-web deia-worker deia-maintenance deia-beat)
# Services whose files this run changed: the systemd step restarts exactly these.
declare -A CHANGED=()
STEP=start

say() { printf 'install: %s\n' "$*"; }
die() { printf 'install: ERROR: %s\n' "$*" >&2; exit 1; }
trap 'die "step $STEP failed at line $LINENO: $BASH_COMMAND"' ERR
step() { STEP=$1; [[ $SKIP != *" $1 "* ]] || { say "$1: skipped (DEIA_SKIP)"; return 1; }; }

# Every absolute path this script writes, re-rooted under DEIA_PREFIX (file contents too);
# the listen ports, where a file names them.
render() {  # render SOURCE > rendered text on stdout
  local roots='/opt/deia|/etc/deia|/etc/prometheus|/etc/alertmanager|/etc/default|/etc/nginx|/etc/ssl'
  roots+='|/etc/redis|/etc/logrotate\.d|/etc/systemd/system|/var/lib/deia|/var/log/deia'
  roots+='|/var/backups/deia|/var/lib/prometheus|/run/deia'
  sed -E -e "s#(^|[^[:alnum:]_.-])($roots)#\\1$P\\2#g" \
    -e "s#127\\.0\\.0\\.1:8000#127.0.0.1:$WEB_PORT#g; s#127\\.0\\.0\\.1:9090#127.0.0.1:$PROMETHEUS_PORT#g" \
    -e "s#127\\.0\\.0\\.1:9093#127.0.0.1:$ALERTMANAGER_PORT#g; s#127\\.0\\.0\\.1:9100#127.0.0.1:$NODE_EXPORTER_PORT#g" \
    -e "s#127\\.0\\.0\\.1:9187#127.0.0.1:$POSTGRES_EXPORTER_PORT#g; s#127\\.0\\.0\\.1:9121#127.0.0.1:$REDIS_EXPORTER_PORT#g" \
    "$1"
}

# The site's and the app's host name (not the example mail addresses of the Alertmanager file).
named() { sed "s#deia\\.example\\.com#$SERVER_NAME#g"; }

# put TEXT-FILE DEST MODE OWNER:GROUP [SERVICES]: install a file only if it differs; the
# services (space-separated) are restarted by the systemd step.
put() {
  local src=$1 dest=$2 mode=$3 owner=$4 service=${5:-}
  if [ -f "$dest" ] && cmp -s "$src" "$dest" && [ "$(stat -c '%a %U:%G' "$dest")" = "${mode#0} $owner" ]; then
    return 0
  fi
  install -D -m "$mode" -o "${owner%:*}" -g "${owner#*:}" "$src" "$dest"
  say "wrote $dest"
  local s
  for s in $service; do CHANGED[$s]=1; done
}

# place SOURCE DEST MODE OWNER:GROUP [SERVICE]: render a file of this checkout, then put it.
place() {
  local tmp
  tmp=$(mktemp)
  render "$1" | named > "$tmp"
  put "$tmp" "$2" "$3" "$4" "${5:-}"
  rm -f "$tmp"
}

# dir PATH MODE OWNER:GROUP: a folder with exactly this mode and owner.
dir() {
  if [ -d "$1" ] && [ "$(stat -c '%a %U:%G' "$1")" = "${2#0} $3" ]; then return 0; fi
  install -d -m "$2" -o "${3%:*}" -g "${3#*:}" "$1"
  say "made $1"
}

# secret FILE OWNER:GROUP: a random value made once (hex, safe in URLs), owner-only.
secret() {
  if [ ! -s "$1" ]; then
    (umask 077 && od -An -N24 -tx1 /dev/urandom | tr -d ' \n' > "$1")
    say "generated $1"
  fi
  chown "$2" "$1"
  chmod 0600 "$1"
}

# set_env FILE KEY VALUE: one line KEY=VALUE in an env file, replaced or added.
set_env() {
  grep -qxF "$2=$3" "$1" && return 0
  awk -v k="$2" -v v="$3" 'BEGIN { done = 0 } index($0, k "=") == 1 { print k "=" v; done = 1; next } { print }
    END { if (!done) print k "=" v }' "$1" > "$1.new"
  mv "$1.new" "$1"
}

psql_admin() { runuser -u postgres -- env PGOPTIONS='-c client_min_messages=warning' psql -p "$DB_PORT" -v ON_ERROR_STOP=1 -qAtX "$@"; }

STEPS=" apt user code venv secrets database env redis setup units nginx prometheus alertmanager exporters pgmonitor systemd "
for name in ${DEIA_SKIP:-}; do
  [[ $STEPS == *" $name "* ]] || die "DEIA_SKIP: no step '$name' (steps:$STEPS)"
done
[ "$(id -u)" = 0 ] || die "run as root (it creates a user, installs packages and writes /etc)"
[ -f "$SRC/manage.py" ] && [ -f "$SRC/requirements.txt" ] || die "$SRC is not a DEIA Bot Controller checkout"
[[ $DB_NAME =~ ^[a-z_][a-z0-9_]*$ && $DB_USER =~ ^[a-z_][a-z0-9_]*$ ]] || die "DEIA_DB_NAME and DEIA_DB_USER: lowercase letters, digits, _"
say "installing $SRC into ${P:-/} for $SERVER_NAME"

if step apt; then
  missing=()
  for pkg in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
  done
  if ((${#missing[@]})); then
    say "apt: installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q >/dev/null
    apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
  fi
fi

if step user; then
  getent group deia >/dev/null || { groupadd --system deia; say "made group deia"; }
  if ! getent passwd deia >/dev/null; then
    useradd --system --gid deia --home-dir /opt/deia --no-create-home --shell /usr/sbin/nologin deia
    say "made user deia"
  fi
  getent group prometheus >/dev/null || die "group prometheus missing: install the prometheus package (step apt)"
fi

STEP=folders
dir "$P/opt" 0755 root:root
dir "$OPT" 0755 root:root
dir "$ETC" 0750 root:deia
dir "$P/var/lib/deia" 0700 deia:deia
dir "$P/var/log/deia" 0700 deia:deia
dir "$P/var/backups/deia" 0750 deia:deia
# STATIC_ROOT (deia.env) and nginx's `location /static/` alias: setup fills it, nginx reads it.
dir "$OPT/staticfiles" 0755 deia:deia

if step code; then
  # The checkout minus Git, venvs, local state and caches; world-readable, owned by root.
  code() {
    tar -C "$SRC" --sort=name --exclude-vcs --exclude=./.venv --exclude=./var --exclude=./staticfiles \
      --exclude=__pycache__ --exclude=.pytest_cache --exclude=.ruff_cache --owner=root --group=root \
      --mode='u+rwX,go+rX,go-w' -cf - .
  }
  sum=$(code | sha256sum | cut -c1-64)
  if [ "$(cat "$OPT/.source.sha256" 2>/dev/null)" != "$sum" ]; then
    code | tar -C "$OPT" --no-same-owner -xf -
    echo "$sum" > "$OPT/.source.sha256"
    say "copied the code to $OPT"
    for unit in "${UNITS[@]}"; do CHANGED[$unit]=1; done
  fi
fi

if step venv; then
  "$PYTHON" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' || die "$PYTHON is not Python 3.11"
  stamp="$VENV/.installed-$(cat "$OPT/requirements.txt" <("$PYTHON" -V) | sha256sum | cut -c1-12)"
  if [ ! -e "$stamp" ]; then
    [ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
    log=$(mktemp)
    "$VENV/bin/pip" install -q --disable-pip-version-check -r "$OPT/requirements.txt" > "$log" 2>&1 \
      || die "pip install -r $OPT/requirements.txt failed: $(grep -v '^WARNING' "$log" | tail -n 1)"
    rm -f "$log"
    "$VENV/bin/pip" check >/dev/null || die "pip check: the venv's requirements are inconsistent"
    rm -f "$VENV"/.installed-* && touch "$stamp"
    say "venv ready: $VENV"
    for unit in "${UNITS[@]}"; do CHANGED[$unit]=1; done
  fi
fi

if step secrets; then
  # /etc/deia: root:deia 0750. The app's key belongs to deia alone; the passwords the
  # installer keeps (to write deia.env again) belong to root alone.
  secret "$ETC/secret_key" deia:deia
  secret "$ETC/db_password" root:root
  if [ -z "${DEIA_REDIS_URL:-}" ]; then secret "$ETC/redis_password" root:root; fi
  if [ ! -s "$ETC/admin_password" ]; then
    if [ -n "${DEIA_ADMIN_PASSWORD:-}" ]; then
      (umask 077 && printf '%s\n' "$DEIA_ADMIN_PASSWORD" > "$ETC/admin_password")
    else
      (umask 077 && "$PYTHON" -c 'import secrets; print(secrets.token_urlsafe(18))' > "$ETC/admin_password")
    fi
    say "admin password in $ETC/admin_password (root only)"
  fi
  chown root:root "$ETC/admin_password" && chmod 0600 "$ETC/admin_password"
fi
DB_PASSWORD=$(cat "$ETC/db_password" 2>/dev/null) || die "no $ETC/db_password (step secrets skipped on a first install?)"
REDIS_URL=${DEIA_REDIS_URL:-redis://:$(cat "$ETC/redis_password" 2>/dev/null)@127.0.0.1:6379/0}

if step database; then
  if [ -z "$(psql_admin -c "SELECT 1 FROM pg_roles WHERE rolname = '$DB_USER'")" ]; then
    psql_admin -c "CREATE ROLE $DB_USER LOGIN PASSWORD '$DB_PASSWORD'" >/dev/null
    say "made PostgreSQL role $DB_USER"
  elif ! PGPASSWORD=$DB_PASSWORD PGCONNECT_TIMEOUT=5 psql -h "$DB_HOST" -p "$DB_PORT" -U "$DB_USER" -d postgres \
    -qAtX -c 'SELECT 1' >/dev/null 2>&1; then
    psql_admin -c "ALTER ROLE $DB_USER LOGIN PASSWORD '$DB_PASSWORD'" >/dev/null
    say "set the password of PostgreSQL role $DB_USER"
  fi
  # diagnose and the runbooks read pg_stat_activity and cancel the app's own queries;
  # verify_backup restores the newest backup into a scratch database of its own.
  psql_admin -c "GRANT pg_monitor, pg_signal_backend TO $DB_USER" >/dev/null
  psql_admin -c "ALTER ROLE $DB_USER CREATEDB" >/dev/null
  if [ -z "$(psql_admin -c "SELECT 1 FROM pg_database WHERE datname = '$DB_NAME'")" ]; then
    psql_admin -c "CREATE DATABASE $DB_NAME OWNER $DB_USER" >/dev/null
    say "made PostgreSQL database $DB_NAME"
  fi
fi

if step env; then
  tmp=$(mktemp)
  if [ -f "$ENV_FILE" ]; then cp "$ENV_FILE" "$tmp"; else render "$SRC/deploy/systemd/deia.env.example" | named > "$tmp"; fi
  # The installer's own lines; everything else in deia.env is the operator's to edit.
  if grep -qx 'DATABASE_POOLER=pgbouncer' "$tmp"; then
    set_env "$tmp" DATABASE_URL "postgres://$DB_USER:$DB_PASSWORD@127.0.0.1:${DEIA_PGBOUNCER_PORT:-6432}/$DB_NAME"
    set_env "$tmp" DATABASE_DIRECT_URL "postgres://$DB_USER:$DB_PASSWORD@$DB_HOST:$DB_PORT/$DB_NAME"
  else
    set_env "$tmp" DATABASE_URL "postgres://$DB_USER:$DB_PASSWORD@$DB_HOST:$DB_PORT/$DB_NAME"
  fi
  set_env "$tmp" REDIS_URL "$REDIS_URL"
  set_env "$tmp" GUNICORN_BIND "127.0.0.1:$WEB_PORT"
  set_env "$tmp" DIAGNOSE_WEB_URL "http://127.0.0.1:$WEB_PORT"
  set_env "$tmp" BOT_PORT_RANGE "$BOT_PORTS"
  put "$tmp" "$ENV_FILE" 0640 root:deia "${UNITS[*]}"
  rm -f "$tmp"
fi

if step redis && [ -z "${DEIA_REDIS_URL:-}" ]; then
  conf=$P/etc/redis/redis.conf
  [ -f "$conf" ] || die "no $conf: install redis-server (step apt)"
  tmp=$(mktemp)
  cp "$conf" "$tmp"
  grep -q '^maxmemory-policy volatile-lru' "$tmp" || cat "$SRC/deploy/exporters/redis-maxmemory.conf" >> "$tmp"
  sed -i '/^requirepass /d' "$tmp" && echo "requirepass $(cat "$ETC/redis_password")" >> "$tmp"
  put "$tmp" "$conf" 0640 redis:redis redis-server
  # The exporter reads the same password from a file of its own (a second EnvironmentFile).
  printf 'REDIS_PASSWORD=%s\n' "$(cat "$ETC/redis_password")" > "$tmp"
  dir "$P/etc/default/prometheus-redis-exporter.d" 0750 root:prometheus
  put "$tmp" "$P/etc/default/prometheus-redis-exporter.d/password" 0640 root:prometheus prometheus-redis-exporter
  printf '[Service]\nEnvironmentFile=%s\n' "$P/etc/default/prometheus-redis-exporter.d/password" > "$tmp"
  put "$tmp" "$P/etc/systemd/system/prometheus-redis-exporter.service.d/password.conf" 0644 root:root \
    prometheus-redis-exporter
  rm -f "$tmp"
fi

if step setup; then
  # As deia, with deia.env (what the units read): migrate, static files, admin, schedules.
  envs=()
  while IFS= read -r line; do
    [[ $line =~ ^[A-Za-z_][A-Za-z0-9_]*= ]] && envs+=("$line")
  done < "$ENV_FILE"
  out=$(cd "$OPT" && runuser -u deia -- env -i "${envs[@]}" PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME="$OPT" \
    DEIA_ADMIN_PASSWORD="$(cat "$ETC/admin_password")" "$VENV/bin/python" manage.py setup --no-demo 2>&1) \
    || die "manage.py setup failed: $(printf '%s' "$out" | tail -n 1)"
  say "$(printf '%s' "$out" | tail -n 1)"
fi

if step units; then
  for unit in "${UNITS[@]}"; do
    place "$SRC/deploy/systemd/$unit.service" "$P/etc/systemd/system/$unit.service" 0644 root:root "$unit"
  done
  place "$SRC/deploy/logrotate/deia" "$P/etc/logrotate.d/deia" 0644 root:root
fi

if step nginx; then
  place "$SRC/deploy/nginx/deia.conf" "$P/etc/nginx/sites-available/deia" 0644 root:root nginx
  dir "$P/etc/nginx/sites-enabled" 0755 root:root
  if [ "$(readlink "$P/etc/nginx/sites-enabled/deia" 2>/dev/null)" != "$P/etc/nginx/sites-available/deia" ]; then
    ln -sfn "$P/etc/nginx/sites-available/deia" "$P/etc/nginx/sites-enabled/deia" && CHANGED[nginx]=1
  fi
  key=$P/etc/ssl/private/$SERVER_NAME.key
  if [ ! -s "$key" ]; then
    install -d -m 0755 "$P/etc/ssl/certs" && install -d -m 0710 "$P/etc/ssl/private"
    (umask 077 && openssl req -x509 -newkey rsa:2048 -nodes -days 825 -subj "/CN=$SERVER_NAME" \
      -addext "subjectAltName=DNS:$SERVER_NAME" -keyout "$key" -out "$P/etc/ssl/certs/$SERVER_NAME.pem" 2>/dev/null)
    chmod 0644 "$P/etc/ssl/certs/$SERVER_NAME.pem"
    say "self-signed certificate $P/etc/ssl/certs/$SERVER_NAME.pem: replace it with a real one"
    CHANGED[nginx]=1
  fi
fi

if step prometheus; then
  place "$SRC/deploy/prometheus/prometheus.yml" "$P/etc/prometheus/prometheus.yml" 0644 root:root prometheus
  for rules in "$SRC"/deploy/prometheus/rules/*.yml; do
    place "$rules" "$P/etc/prometheus/rules/$(basename "$rules")" 0644 root:root prometheus
  done
  dir "$P/var/lib/prometheus/metrics2" 0755 prometheus:prometheus
  # Debian's prometheus.service runs `prometheus $ARGS` with this file's ARGS.
  tmp=$(mktemp)
  printf '# Written by deploy/install.sh. Loopback only: Grafana and Alertmanager are on this host.\n' > "$tmp"
  printf 'ARGS="--config.file=%s --storage.tsdb.path=%s --web.listen-address=127.0.0.1:%s"\n' \
    "$P/etc/prometheus/prometheus.yml" "$P/var/lib/prometheus/metrics2/" "$PROMETHEUS_PORT" >> "$tmp"
  put "$tmp" "$P/etc/default/prometheus" 0644 root:root prometheus
  rm -f "$tmp"
  promtool check config "$P/etc/prometheus/prometheus.yml" >/dev/null 2>&1 \
    || die "promtool check config $P/etc/prometheus/prometheus.yml failed"
fi

if step alertmanager; then
  # Debian's prometheus-alertmanager reads /etc/prometheus/alertmanager.yml; the templates
  # go to its alertmanager_templates/ folder beside it.
  tmp=$(mktemp)
  render "$SRC/deploy/alertmanager/alertmanager.yml" | sed 's#^  - templates/\*\.tmpl#  - alertmanager_templates/*.tmpl#' > "$tmp"
  put "$tmp" "$P/etc/prometheus/alertmanager.yml" 0644 root:root prometheus-alertmanager
  for tmpl in "$SRC"/deploy/alertmanager/templates/*.tmpl; do
    place "$tmpl" "$P/etc/prometheus/alertmanager_templates/$(basename "$tmpl")" 0644 root:root prometheus-alertmanager
  done
  # Secrets in files, never in the YAML: made empty once, the operator writes the values.
  dir "$P/etc/alertmanager" 0755 root:root
  dir "$P/etc/alertmanager/secrets" 0750 root:prometheus
  for s in slack_webhook_url pagerduty_routing_key smtp_password heartbeat_token; do
    [ -e "$P/etc/alertmanager/secrets/$s" ] || { install -m 0640 -g prometheus /dev/null "$P/etc/alertmanager/secrets/$s"; say "made empty $P/etc/alertmanager/secrets/$s: write its value"; }
  done
  dir "$P/var/lib/prometheus/alertmanager" 0755 prometheus:prometheus
  # One host, no HA peers: no cluster listener (it would open 0.0.0.0:9094).
  printf '# Written by deploy/install.sh. Debian'"'"'s unit runs `prometheus-alertmanager $ARGS`.\n' > "$tmp"
  printf 'ARGS="--config.file=%s --storage.path=%s --web.listen-address=127.0.0.1:%s --cluster.listen-address="\n' \
    "$P/etc/prometheus/alertmanager.yml" "$P/var/lib/prometheus/alertmanager/" "$ALERTMANAGER_PORT" >> "$tmp"
  put "$tmp" "$P/etc/default/prometheus-alertmanager" 0644 root:root prometheus-alertmanager
  rm -f "$tmp"
  amtool check-config "$P/etc/prometheus/alertmanager.yml" >/dev/null 2>&1 \
    || die "amtool check-config $P/etc/prometheus/alertmanager.yml failed"
fi

if step exporters; then
  for e in node postgres redis; do
    place "$SRC/deploy/exporters/prometheus-$e-exporter.default" "$P/etc/default/prometheus-$e-exporter" \
      0644 root:root "prometheus-$e-exporter"
  done
fi

if step pgmonitor; then
  # postgres_exporter's role: pg_monitor, peer authentication, no password.
  psql_admin -f "$SRC/deploy/exporters/postgres-monitoring-role.sql" >/dev/null
fi

if step systemd; then
  systemctl daemon-reload
  [ -z "${CHANGED[nginx]:-}" ] || { nginx -t -q || die "nginx -t failed"; }
  for service in redis-server prometheus-node-exporter prometheus-postgres-exporter prometheus-redis-exporter \
    prometheus prometheus-alertmanager nginx "${UNITS[@]}"; do
    systemctl enable -q "$service"
    if [ -n "${CHANGED[$service]:-}" ]; then
      systemctl restart "$service" || die "systemctl restart $service failed: journalctl -u $service"
      say "restarted $service"
    else
      systemctl start "$service" || die "systemctl start $service failed: journalctl -u $service"
    fi
  done
  STEP=health
  for _ in $(seq 150); do
    curl -fsS -o /dev/null "http://127.0.0.1:$WEB_PORT/health" 2>/dev/null && break
    sleep 0.2
  done
  curl -fsS -o /dev/null "http://127.0.0.1:$WEB_PORT/health" || die "deia-web does not answer /health: journalctl -u deia-web"
fi

say "done. Admin: user admin, password in $ETC/admin_password. Checks: docs/OPS_BUNDLE.md"
