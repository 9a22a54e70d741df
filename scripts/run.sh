#!/usr/bin/env bash
# `make run`: set up (idempotent), then run web, workers and beat until Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."
# var/ holds the SQLite database, backups, logs and the secret key: owner-only.
umask 077
export PATH="$PWD/.venv/bin:$PATH"
var=${DEIA_VAR_DIR:-$PWD/var}
mkdir -p "$var"
if [ -z "${SECRET_KEY:-}" ] && [ -z "${SECRET_KEY_FILE:-}" ]; then
  # A key of this installation's own, made once and kept in var/ (never committed).
  [ -s "$var/secret_key" ] || (umask 077 && python -c 'import secrets; print(secrets.token_urlsafe(50))' > "$var/secret_key")
  export SECRET_KEY_FILE="$var/secret_key"
fi
python manage.py setup
stop_bots() {
  # Bots run detached from the worker so a worker restart keeps them; leaving `make run`
  # must not, so stop this host's bot processes (they start again with the next run).
  python manage.py botctl shutdown-host 2>/dev/null || true
}
trap stop_bots EXIT
echo "DEIA Bot Controller: admin at http://127.0.0.1:8000/admin/ — Ctrl-C stops everything"
honcho start -f Procfile
