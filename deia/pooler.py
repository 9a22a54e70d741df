"""PgBouncer in front of PostgreSQL (DATABASE_POOLER=pgbouncer): what goes past it, and the
system check that refuses settings transaction pooling cannot serve (docs/PGBOUNCER.md).

In transaction pooling mode each transaction may run on another server connection, and
between two transactions the client's server connection may serve someone else. So nothing
may rely on session state: no named prepared statements, no WITH HOLD cursors, no SET
outside a transaction (Django's SET TIME ZONE is the exception: PgBouncer tracks TimeZone
and replays it, and every client sets the same UTC), no SET ROLE (OPTIONS assume_role), no
session advisory locks (the lifecycle takes pg_advisory_xact_lock), no LISTEN, no
temporary tables. Schema changes and dumps go straight to PostgreSQL: DATABASE_DIRECT_URL.
"""

from __future__ import annotations

from pathlib import Path

from django.conf import settings
from django.core.checks import Error

# One-shot `manage.py` commands that connect with DATABASE_DIRECT_URL instead of DATABASE_URL:
# schema changes take locks and may run longer than PgBouncer's timeouts, and dbshell's
# session is an operator's. (pg_dump/pg_restore use it from ops.maintenance.pg.Target.)
DIRECT_COMMANDS = frozenset({"migrate", "setup", "dbshell", "flush", "createcachetable", "backup", "restore"})


def direct_command(argv: list[str]) -> bool:
    """True when this process is a `manage.py` command in DIRECT_COMMANDS."""
    return len(argv) > 1 and Path(argv[0]).name == "manage.py" and argv[1] in DIRECT_COMMANDS


def pooler_problems() -> list[str]:
    """What in the database settings PgBouncer's transaction pooling cannot serve, one line each."""
    if settings.DATABASE_POOLER != "pgbouncer":
        return []
    database = settings.DATABASE_SERVED
    if "postgresql" not in database["ENGINE"]:
        return ["DATABASE_POOLER=pgbouncer needs DATABASE_URL to be postgres:// (PgBouncer's address), not SQLite."]
    problems = []
    options = database.get("OPTIONS", {})
    if options.get("prepare_threshold") is not None:
        problems.append(
            f"DATABASE_POOLER=pgbouncer with prepare_threshold={options['prepare_threshold']}: PgBouncer 1.18 in "
            "transaction mode cannot serve prepared statements; remove prepare_threshold from DATABASE_URL."
        )
    if not database.get("DISABLE_SERVER_SIDE_CURSORS"):
        problems.append("DATABASE_POOLER=pgbouncer needs DISABLE_SERVER_SIDE_CURSORS=True (WITH HOLD cursors).")
    if options.get("assume_role"):
        problems.append(
            "DATABASE_POOLER=pgbouncer with assume_role: SET ROLE is session state; connect as that role instead."
        )
    if settings.DATABASE_DIRECT is None:
        problems.append(
            "DATABASE_POOLER=pgbouncer needs DATABASE_DIRECT_URL (PostgreSQL itself, not PgBouncer): "
            "migrations and backups go there."
        )
    elif "postgresql" not in settings.DATABASE_DIRECT["ENGINE"]:
        problems.append("DATABASE_DIRECT_URL must be postgres:// (PostgreSQL itself), not SQLite.")
    return problems


def check_pooler(app_configs, **kwargs) -> list[Error]:
    return [Error(problem, hint="See docs/PGBOUNCER.md.", id="deia.E020") for problem in pooler_problems()]
