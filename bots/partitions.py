"""chat_messages partitioned by month on PostgreSQL (declarative RANGE partitioning on created_at).

One partition per month, chat_messages_YYYY_MM, holding [first of the month, first of the next)
in UTC, plus chat_messages_default for a row no month's partition takes (a safety net: diagnose
warns while it holds rows, and the next chat_partitions run moves them into their months).
The indexes are declared on the parent (the model's Meta), so every partition has them; the
primary key is (id, created_at) in the database, because PostgreSQL wants the partition key in
every unique constraint; Django still sees `id` as the key (ids come from one sequence).

- `create_ahead()`: this month and the next CHAT_PARTITIONS_AHEAD (the chat_partitions job).
- `drop_expired(cutoff)`: the months wholly before the cutoff, dropped (purge_messages).
SQLite keeps a plain table: `is_partitioned()` is False there, and callers keep row deletion.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime

from django.conf import settings
from django.db import connections, transaction

from deia.audit import audit
from deia.audit_actions import Action

TABLE = "chat_messages"
DEFAULT = f"{TABLE}_default"
ACTOR = "maintenance"
# Serialises the DDL of two runs (a scheduled one and an operator's): the same key everywhere.
LOCK_KEY = 0x43484154  # "CHAT"
# A DROP or ATTACH waits this long for its lock rather than queueing every chat behind a long query.
LOCK_TIMEOUT = "5s"
MAX_NAME = 63  # PostgreSQL's identifiers
BOUND = re.compile(r"FROM \('([^']+)'\) TO \('([^']+)'\)")


def month_of(moment: datetime | date) -> date:
    """The first day of the month (UTC) that holds `moment`."""
    if isinstance(moment, datetime):
        moment = moment.astimezone(UTC) if moment.tzinfo else moment
    return date(moment.year, moment.month, 1)


def add_months(month: date, n: int) -> date:
    index = month.year * 12 + month.month - 1 + n
    return date(index // 12, index % 12 + 1, 1)


def months_between(first: datetime | date, last: datetime | date) -> list[date]:
    """Every month from `first`'s to `last`'s, both included."""
    months, month, last = [], month_of(first), month_of(last)
    while month <= last:
        months.append(month)
        month = add_months(month, 1)
    return months


def partition_name(month: date) -> str:
    return f"{TABLE}_{month:%Y_%m}"


def bounds(month: date) -> tuple[datetime, datetime]:
    start = datetime(month.year, month.month, 1, tzinfo=UTC)
    return start, datetime.combine(add_months(month, 1), datetime.min.time(), tzinfo=UTC)


@dataclass(frozen=True)
class Partition:
    name: str
    start: datetime
    end: datetime  # exclusive


def is_partitioned(using: str = "default") -> bool:
    connection = connections[using]
    if connection.vendor != "postgresql":
        return False
    with connection.cursor() as cursor:
        cursor.execute("SELECT EXISTS (SELECT 1 FROM pg_partitioned_table WHERE partrelid = to_regclass(%s))", [TABLE])
        return cursor.fetchone()[0]


def partitions(using: str = "default") -> list[Partition]:
    """The range partitions of chat_messages, oldest first (the default partition is not one)."""
    with connections[using].cursor() as cursor:
        cursor.execute(
            "SELECT c.relname, pg_get_expr(c.relpartbound, c.oid) FROM pg_inherits i "
            "JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = %s::regclass",
            [TABLE],
        )
        rows = cursor.fetchall()
    found = []
    for name, bound in rows:
        match = BOUND.search(bound)
        if match:  # DEFAULT has no range; MINVALUE/MAXVALUE ones were not made here
            # Printed in the session's time zone, with its offset: aware datetimes either way.
            start, end = (datetime.fromisoformat(value) for value in match.groups())
            found.append(Partition(name, start, end))
    return sorted(found, key=lambda p: p.start)


def _quote(using: str, name: str) -> str:
    return connections[using].ops.quote_name(name)


def default_rows(using: str = "default", limit: int = 10_000) -> int:
    """Rows in the default partition, counted up to `limit` (it should hold none)."""
    with connections[using].cursor() as cursor:
        cursor.execute(f"SELECT count(*) FROM (SELECT 1 FROM {_quote(using, DEFAULT)} LIMIT %s) AS r", [limit])  # noqa: S608
        return cursor.fetchone()[0]


def _months_in_default(using: str) -> list[date]:
    with connections[using].cursor() as cursor:
        cursor.execute(
            f"SELECT DISTINCT date_trunc('month', created_at AT TIME ZONE 'UTC')::date FROM {_quote(using, DEFAULT)}"  # noqa: S608
        )
        return sorted(row[0] for row in cursor.fetchall())


def ensure_month(month: date, using: str = "default", actor: str = ACTOR) -> bool:
    """Create the partition of `month` unless it exists; True when it was created (audited).

    Rows of that month waiting in the default partition move into it. The partition is built
    as a table of its own and ATTACHed: ATTACH locks the parent in SHARE UPDATE EXCLUSIVE mode,
    so chats go on being written meanwhile (CREATE TABLE ... PARTITION OF would block them).
    """
    name = partition_name(month)
    start, end = bounds(month)
    quoted, table, default = _quote(using, name), _quote(using, TABLE), _quote(using, DEFAULT)
    with transaction.atomic(using=using), connections[using].cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(%s)", [LOCK_KEY])
        cursor.execute("SELECT to_regclass(%s) IS NOT NULL", [name])
        if cursor.fetchone()[0]:
            return False
        cursor.execute(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'")
        cursor.execute(f"CREATE TABLE {quoted} (LIKE {table} INCLUDING DEFAULTS INCLUDING CONSTRAINTS)")
        cursor.execute(
            f"WITH moved AS (DELETE FROM {default} WHERE created_at >= %s AND created_at < %s RETURNING *) "  # noqa: S608
            f"INSERT INTO {quoted} SELECT * FROM moved",
            [start, end],
        )
        moved = cursor.rowcount
        cursor.execute(f"ALTER TABLE {table} ATTACH PARTITION {quoted} FOR VALUES FROM (%s) TO (%s)", [start, end])
        name_indexes(using)
        audit(
            Action.CHAT_PARTITION_CREATE,
            actor=actor,
            target=name,
            details={"from": start.isoformat(), "to": end.isoformat(), "moved_from_default": moved},
        )
    return True


# Each partition's index of each of the parent's indexes (not the key's: PostgreSQL names that one).
PARTITION_INDEXES = """
SELECT c.relname, t.relname || '_' || p.relname FROM pg_inherits h
JOIN pg_class c ON c.oid = h.inhrelid JOIN pg_class p ON p.oid = h.inhparent
JOIN pg_index x ON x.indexrelid = c.oid JOIN pg_class t ON t.oid = x.indrelid
WHERE h.inhparent IN (SELECT indexrelid FROM pg_index WHERE indrelid = %s::regclass AND NOT indisprimary)
"""


def name_indexes(using: str = "default") -> None:
    """Name each partition's indexes after the model's: chat_messages_2026_12_chat_bot_created_idx,
    so that a query plan says which declared index it reads (PostgreSQL would pick column names)."""
    with connections[using].cursor() as cursor:
        cursor.execute(PARTITION_INDEXES, [TABLE])
        for name, wanted in cursor.fetchall():
            if name != wanted and len(wanted) <= MAX_NAME:
                cursor.execute(f"ALTER INDEX {_quote(using, name)} RENAME TO {_quote(using, wanted)}")


def create_ahead(ahead: int | None = None, now: datetime | None = None, using: str = "default") -> list[str]:
    """This month's partition and the next `ahead` months' (CHAT_PARTITIONS_AHEAD), plus one for
    each month that has rows waiting in the default partition; the names of those created."""
    ahead = settings.CHAT_PARTITIONS_AHEAD if ahead is None else ahead
    this = month_of(now or datetime.now(UTC))
    months = sorted({*months_between(this, add_months(this, ahead)), *_months_in_default(using)})
    return [partition_name(month) for month in months if ensure_month(month, using)]


@dataclass(frozen=True)
class Dropped:
    name: str
    rows: int


def drop_expired(cutoff: datetime, using: str = "default", actor: str = ACTOR) -> list[Dropped]:
    """Drop every month's partition whose upper bound is at or before `cutoff`, each audited
    with its row count. The month straddling the cutoff stays whole until it expires."""
    dropped = []
    for partition in partitions(using):
        if partition.end > cutoff:
            continue
        quoted = _quote(using, partition.name)
        # Counted before the lock, so nobody waits on the count: nothing writes into an expired month.
        with connections[using].cursor() as cursor:
            cursor.execute(f"SELECT count(*) FROM {quoted}")  # noqa: S608
            rows = cursor.fetchone()[0]
        with transaction.atomic(using=using), connections[using].cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [LOCK_KEY])
            cursor.execute(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'")
            # DETACH then DROP: the partition's own storage goes at once, no row is deleted, no dead tuple left.
            cursor.execute(f"ALTER TABLE {_quote(using, TABLE)} DETACH PARTITION {quoted}")
            cursor.execute(f"DROP TABLE {quoted}")
            audit(
                Action.CHAT_PARTITION_DROP,
                actor=actor,
                target=partition.name,
                details={"rows": rows, "from": partition.start.isoformat(), "to": partition.end.isoformat()},
            )
        dropped.append(Dropped(partition.name, rows))
    return dropped


def delete_expired_default(cutoff: datetime, batch: int, using: str = "default") -> tuple[int, int]:
    """Delete rows of the default partition older than `cutoff`, `batch` rows per transaction:
    (rows, batches). They are few (the safety net), so row deletion costs nothing there."""
    total = batches = 0
    default = _quote(using, DEFAULT)
    while True:
        with transaction.atomic(using=using), connections[using].cursor() as cursor:
            cursor.execute(
                f"DELETE FROM {default} WHERE ctid IN "  # noqa: S608
                f"(SELECT ctid FROM {default} WHERE created_at < %s LIMIT %s)",
                [cutoff, batch],
            )
            if not cursor.rowcount:
                return total, batches
            total += cursor.rowcount
            batches += 1
