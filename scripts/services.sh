#!/usr/bin/env bash
# Install (apt, once) and start the services the test suite talks to: PostgreSQL 15,
# Redis 7, plus the Prometheus, Alertmanager and Chromium binaries the e2e tests start
# themselves. Idempotent: a service already answering is left alone. As root on Debian 12.
set -euo pipefail

PG_VERSION=15
PG_PORT=${PG_PORT:-5432}
REDIS_PORT=${REDIS_PORT:-6379}
DB_USER=${DB_USER:-deia}
DB_PASSWORD=${DB_PASSWORD:-deia}
DB_NAME=${DB_NAME:-deia}

say() { printf 'services: %s\n' "$*"; }
die() { printf 'services: ERROR: %s\n' "$*" >&2; exit 1; }

wait_for() {  # wait_for DESCRIPTION SECONDS COMMAND...
  local what=$1 deadline=$((SECONDS + $2)); shift 2
  until "$@" >/dev/null 2>&1; do
    ((SECONDS < deadline)) || die "$what did not come up within the deadline"
    sleep 0.2
  done
}

packages=()
command -v pg_ctlcluster >/dev/null && [ -x /usr/lib/postgresql/$PG_VERSION/bin/postgres ] || packages+=(postgresql-$PG_VERSION postgresql-client-$PG_VERSION)
command -v redis-server >/dev/null || packages+=(redis-server)
command -v prometheus >/dev/null || packages+=(prometheus)
# The install test starts Debian's Alertmanager itself (/usr/bin/prometheus-alertmanager), amtool checks its file.
{ command -v amtool >/dev/null && [ -x /usr/bin/prometheus-alertmanager ]; } || packages+=(prometheus-alertmanager)
# The install test makes a venv with Debian's Python, as deploy/install.sh does on a host.
/usr/bin/python3 -c "import ensurepip" 2>/dev/null || packages+=(python3-venv)
command -v chromium >/dev/null || packages+=(chromium)
command -v chromedriver >/dev/null || packages+=(chromium-driver)
command -v systemd-analyze >/dev/null || packages+=(systemd)
command -v sqlite3 >/dev/null || packages+=(sqlite3)
command -v logrotate >/dev/null || packages+=(logrotate)
command -v nginx >/dev/null || packages+=(nginx)
# make bench and its smoke test (tests/integration/test_bench_scenarios.py) drive the API with wrk.
command -v wrk >/dev/null || packages+=(wrk)
# The PgBouncer tests (tests/integration/pgbouncer) start their own pgbouncer on a free port.
[ -x /usr/sbin/pgbouncer ] || packages+=(pgbouncer)
if ((${#packages[@]})); then
  [ "$(id -u)" = 0 ] || die "missing ${packages[*]}; run as root so apt-get can install them"
  say "installing ${packages[*]}"
  export DEBIAN_FRONTEND=noninteractive
  # Debian's maintainer scripts would try to start the daemons; we start them ourselves.
  printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
  apt-get update -q >/dev/null
  apt-get install -y -q --no-install-recommends "${packages[@]}" >/dev/null
  rm -f /usr/sbin/policy-rc.d
  # Not started (policy-rc.d), and not at boot either: the tests start PgBouncers of their own.
  if [[ " ${packages[*]} " == *" pgbouncer "* ]]; then systemctl disable --quiet pgbouncer 2>/dev/null || true; fi
fi

# PostgreSQL
if ! pg_lsclusters -h 2>/dev/null | awk '{print $1" "$2}' | grep -qx "$PG_VERSION main"; then
  say "creating PostgreSQL $PG_VERSION cluster"
  pg_createcluster $PG_VERSION main -p "$PG_PORT" >/dev/null
fi
if ! pg_isready -q -h 127.0.0.1 -p "$PG_PORT"; then
  say "starting PostgreSQL $PG_VERSION"
  pg_ctlcluster $PG_VERSION main start || die "pg_ctlcluster $PG_VERSION main start failed (see /var/log/postgresql/)"
fi
wait_for "PostgreSQL" 30 pg_isready -h 127.0.0.1 -p "$PG_PORT"
psql_admin() { PGOPTIONS='-c client_min_messages=warning' su postgres -c "psql -p $PG_PORT -v ON_ERROR_STOP=1 -qAtX $*"; }
# The application's role: not a superuser (so tests see what production sees), but it
# may create the test databases, read monitoring views and signal its own backends.
psql_admin "-c \"DO \\\$\\\$ BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '$DB_USER') THEN
    CREATE ROLE $DB_USER LOGIN PASSWORD '$DB_PASSWORD' CREATEDB;
  END IF;
END \\\$\\\$;\"" >/dev/null
psql_admin "-c 'GRANT pg_monitor, pg_signal_backend TO $DB_USER'" >/dev/null
if [ -z "$(psql_admin "-c \"SELECT 1 FROM pg_database WHERE datname = '$DB_NAME'\"")" ]; then
  psql_admin "-c 'CREATE DATABASE $DB_NAME OWNER $DB_USER'" >/dev/null
fi

# Redis: no persistence for tests, loopback only.
if ! redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping 2>/dev/null | grep -q PONG; then
  say "starting Redis"
  redis-server --daemonize yes --bind 127.0.0.1 --port "$REDIS_PORT" --save '' --appendonly no \
    --logfile /tmp/deia-redis.log >/dev/null
fi
wait_for "Redis" 15 sh -c "redis-cli -h 127.0.0.1 -p $REDIS_PORT ping | grep -q PONG"

say "PostgreSQL on 127.0.0.1:$PG_PORT (role $DB_USER, database $DB_NAME), Redis on 127.0.0.1:$REDIS_PORT: ready"
