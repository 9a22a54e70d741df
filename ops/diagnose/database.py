"""The database's checks: it answers, its connections, its slow and idle-in-transaction sessions,
chat_messages' partitions."""

from __future__ import annotations

from django.conf import settings
from django.db import connection
from django.utils import timezone

from bots import partitions
from deia.probes.services import probe_database
from ops.diagnose.grading import Check, Level, graded, ok


def check_database() -> Check:
    result = probe_database(settings.DIAGNOSE_TIMEOUT, own_connection=True)
    if not result.ok:
        lines = str(result.error).strip().splitlines()
        reason = lines[0][:200] if lines else type(result.error).__name__
        return Check(
            "database",
            Level.CRIT,
            f"unreachable: {reason}",
            "SELECT 1 answers",
            "runbooks/postgres-down.md: systemctl status postgresql; check DATABASE_URL",
        )
    ms = result.latency_s * 1000
    return graded(
        "database",
        ms,
        100,
        1000,
        f"connect and SELECT 1 in {ms:.1f} ms",
        "runbooks/database-connections.md: look for load and slow queries",
        below=False,
    )


PG_ONLY = "not PostgreSQL (SQLite)"


def connection_usage() -> tuple[int, int]:
    """(client sessions, max_connections) of the PostgreSQL server."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FILTER (WHERE backend_type = 'client backend'), current_setting('max_connections')::int "
            "FROM pg_stat_activity"
        )
        return cursor.fetchone()


def check_db_connections() -> Check:
    if not settings.DATABASE_IS_POSTGRES:
        return ok("db_connections", PG_ONLY)
    used, limit = connection_usage()
    percent = 100.0 * used / limit
    return graded(
        "db_connections",
        percent,
        80,
        95,
        f"{used} of max_connections {limit} ({percent:.0f} %)",
        "runbooks/database-connections.md: manage.py terminate_idle_connections --dry-run, then without --dry-run",
        below=False,
    )


# Our own backup holds a snapshot transaction open while pg_dump runs: not a stuck session.
OTHERS = (
    "datname = current_database() AND pid <> pg_backend_pid() AND backend_type = 'client backend' "
    "AND coalesce(application_name, '') <> 'deia-maintenance'"
)


def _sessions(condition: str, since: str) -> list[tuple[int, float]]:
    """(pid, seconds) of other client sessions of this database matching `condition`
    for longer than SLOW_QUERY_SECONDS, measured from the column `since`."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT pid, extract(epoch FROM now() - {since})::float FROM pg_stat_activity WHERE {OTHERS} "  # noqa: S608
            f"AND {condition} AND now() - {since} > make_interval(secs => %s) ORDER BY {since}",
            [settings.SLOW_QUERY_SECONDS],
        )
        return cursor.fetchall()


def check_slow_queries() -> Check:
    if not settings.DATABASE_IS_POSTGRES:
        return ok("slow_queries", PG_ONLY)
    rows = _sessions("state = 'active'", "query_start")
    threshold = f"none running > {settings.SLOW_QUERY_SECONDS:g} s"
    if not rows:
        return ok("slow_queries", "0 queries", threshold)
    listed = ", ".join(f"pid {pid} {seconds:.0f} s" for pid, seconds in rows[:5])
    return Check(
        "slow_queries",
        Level.WARN,
        f"{len(rows)} queries: {listed}",
        threshold,
        f"runbooks/database-connections.md: manage.py cancel_query {rows[0][0]} (shows it), then --yes to cancel",
    )


def check_idle_in_transaction() -> Check:
    if not settings.DATABASE_IS_POSTGRES:
        return ok("idle_in_transaction", PG_ONLY)
    rows = _sessions("state LIKE 'idle in transaction%%'", "state_change")
    threshold = f"none idle in a transaction > {settings.SLOW_QUERY_SECONDS:g} s"
    if not rows:
        return ok("idle_in_transaction", "0 sessions", threshold)
    return Check(
        "idle_in_transaction",
        Level.WARN,
        f"{len(rows)} sessions: pids {', '.join(str(pid) for pid, _ in rows[:10])}",
        threshold,
        "they hold locks and block VACUUM: find the client (pg_stat_activity.application_name) and fix or end it",
    )


def check_chat_partitions() -> Check:
    """chat_messages' monthly partitions: this month's and next month's exist, the default is empty."""
    if not partitions.is_partitioned():
        return ok("chat_partitions", "not partitioned (SQLite)" if not settings.DATABASE_IS_POSTGRES else "plain table")
    threshold = "next month's partition exists; none in chat_messages_default"
    step = "docs/MAINTENANCE.md#chat-history-partitions: manage.py chat_partitions (creates them, moves the rows)"
    waiting = partitions.default_rows()
    if waiting:
        more = "+" if waiting >= 10_000 else ""
        return Check("chat_partitions", Level.WARN, f"{waiting}{more} rows in chat_messages_default", threshold, step)
    existing = partitions.partitions()
    next_month = partitions.bounds(partitions.add_months(partitions.month_of(timezone.now()), 1))[1]
    if not existing or existing[-1].end < next_month:
        last = f"until {existing[-1].end:%Y-%m-%d}" if existing else "none"
        return Check("chat_partitions", Level.WARN, f"partitions {last}", threshold, step)
    return ok("chat_partitions", f"{len(existing)} months, until {existing[-1].end:%Y-%m-%d}", threshold)
