"""Database upkeep: VACUUM (ANALYZE), the table-size and index-usage report, chat and audit retention,
chat_messages' monthly partitions (PostgreSQL)."""

from __future__ import annotations

import time
from datetime import timedelta

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from bots import partitions
from bots.models import ChatMessage
from deia.models import AuditLog
from ops.maintenance.pg import Target
from ops.maintenance.runs import Outcome

DEAD_TUPLES = "SELECT coalesce(sum(n_dead_tup), 0)::bigint FROM pg_stat_user_tables"

# A partitioned table counts as one, its partitions summed (the partitions are not listed apart).
TABLE_SIZES = """
SELECT c.relname, sum(pg_total_relation_size(l.oid))::bigint, sum(pg_relation_size(l.oid))::bigint,
       sum(pg_indexes_size(l.oid))::bigint, sum(greatest(l.reltuples, 0))::bigint
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
JOIN pg_class l ON l.oid = c.oid AND c.relkind = 'r'
    OR l.oid IN (SELECT relid FROM pg_partition_tree(c.oid) WHERE isleaf) AND c.relkind = 'p'
WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition AND n.nspname = 'public'
GROUP BY c.relname
ORDER BY 2 DESC, 1
"""

# A partition's index is counted under its parent's index (and the parent table), scans and sizes summed.
INDEX_USAGE = """
SELECT coalesce(pt.relname, s.relname), coalesce(pi.relname, s.indexrelname), sum(s.idx_scan)::bigint,
       sum(pg_relation_size(s.indexrelid))::bigint, bool_or(i.indisunique)
FROM pg_stat_user_indexes s JOIN pg_index i ON i.indexrelid = s.indexrelid
LEFT JOIN pg_inherits h ON h.inhrelid = s.indexrelid
LEFT JOIN pg_class pi ON pi.oid = h.inhparent
LEFT JOIN pg_index px ON px.indexrelid = h.inhparent
LEFT JOIN pg_class pt ON pt.oid = px.indrelid
WHERE s.schemaname = 'public'
GROUP BY 1, 2
ORDER BY 3, 4 DESC, 2
"""


def vacuum() -> Outcome:
    started = time.monotonic()
    if not settings.DATABASE_IS_POSTGRES:
        with connection.cursor() as cursor:
            cursor.execute("VACUUM")
            cursor.execute("ANALYZE")
        return Outcome(f"SQLite VACUUM and ANALYZE in {time.monotonic() - started:.1f} s", {"engine": "sqlite"})
    # VACUUM cannot run inside a transaction block: a connection of its own, autocommit.
    with Target.default().connect(autocommit=True) as conn:
        dead_before = conn.execute(DEAD_TUPLES).fetchone()[0]
        conn.execute("VACUUM (ANALYZE)")
        dead_after = conn.execute(DEAD_TUPLES).fetchone()[0]
    seconds = round(time.monotonic() - started, 3)
    details = {"dead_tuples_before": dead_before, "dead_tuples_after": dead_after, "duration_seconds": seconds}
    return Outcome(f"VACUUM (ANALYZE) in {seconds:.1f} s; dead tuples {dead_before} -> {dead_after}", details)


def db_report() -> Outcome:
    if not settings.DATABASE_IS_POSTGRES:
        return Outcome("skipped: table and index statistics need PostgreSQL", {"skipped": True})
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_database_size(current_database())")
        database_size = cursor.fetchone()[0]
        cursor.execute(TABLE_SIZES)
        tables = [
            {"table": t, "total_bytes": total, "table_bytes": heap, "index_bytes": idx, "rows_estimate": rows}
            for t, total, heap, idx, rows in cursor.fetchall()
        ]
        cursor.execute(INDEX_USAGE)
        indexes = [
            {"table": t, "index": i, "scans": scans, "bytes": size, "unique": unique}
            for t, i, scans, size, unique in cursor.fetchall()
        ]
    # Unique indexes enforce constraints: never "unused", however rarely they are scanned.
    unused = [i["index"] for i in indexes if i["scans"] == 0 and not i["unique"]]
    largest = tables[0] if tables else None
    summary = f"database {database_size / 1048576:.1f} MiB in {len(tables)} tables"
    if largest:
        summary += f"; largest {largest['table']} {largest['total_bytes'] / 1048576:.1f} MiB"
    summary += f"; {len(unused)} unused indexes"
    details = {"database_bytes": database_size, "tables": tables, "indexes": indexes, "unused_indexes": unused}
    return Outcome(summary, details)


def _delete_older(model, cutoff, batch: int) -> tuple[int, int]:
    """Delete rows of `model` created before `cutoff`, a batch per transaction: (rows, batches).

    Small batches keep each lock and each WAL burst short, so the table keeps taking
    writes while years of history go.
    """
    total = batches = 0
    while True:
        with transaction.atomic():
            ids = list(model.objects.filter(created_at__lt=cutoff).order_by("pk").values_list("pk", flat=True)[:batch])
            if not ids:
                return total, batches
            total += model.objects.filter(pk__in=ids).delete()[0]
            batches += 1


def purge_messages(days: int | None = None, batch: int | None = None) -> Outcome:
    """Delete chat messages older than CHAT_RETENTION_DAYS (unset: kept for ever).

    A partitioned chat_messages (PostgreSQL) loses whole months: each partition whose upper
    bound is at or before the cutoff is dropped (audited as chat.partition_drop); the month
    straddling the cutoff is kept whole until it expires too, so messages live between
    CHAT_RETENTION_DAYS and one month more. Rows of the default partition (the safety net) are
    deleted by row. SQLite, and a plain table, delete row by row in batches.
    """
    days = settings.CHAT_RETENTION_DAYS if days is None else days
    if not days:
        return Outcome("skipped: CHAT_RETENTION_DAYS is not set", {"skipped": True})
    cutoff = timezone.now() - timedelta(days=days)
    batch = batch or settings.CHAT_RETENTION_BATCH
    details = {"retention_days": days, "cutoff": cutoff.isoformat()}
    if not partitions.is_partitioned():
        total, batches = _delete_older(ChatMessage, cutoff, batch)
        details |= {"deleted": total, "batches": batches}
        return Outcome(f"deleted {total} chat messages older than {days} days", details, changed=bool(total))
    dropped = partitions.drop_expired(cutoff)
    total, batches = partitions.delete_expired_default(cutoff, batch)
    rows = sum(d.rows for d in dropped)
    details |= {
        "dropped_partitions": [d.name for d in dropped],
        "dropped_rows": rows,
        "deleted": total,  # by row, from the default partition
        "batches": batches,
    }
    summary = f"dropped {len(dropped)} partitions ({rows} chat messages) and deleted {total} chat messages"
    # Each drop has its own audit row; the run is audited when it deleted rows one by one.
    return Outcome(f"{summary} older than {days} days", details, changed=bool(total))


def chat_partitions(ahead: int | None = None) -> Outcome:
    """Create chat_messages' partitions for this month and the next CHAT_PARTITIONS_AHEAD (each
    audited as chat.partition_create), and for any month whose rows wait in the default partition."""
    if not partitions.is_partitioned():
        return Outcome("skipped: chat_messages is partitioned on PostgreSQL only", {"skipped": True})
    ahead = settings.CHAT_PARTITIONS_AHEAD if ahead is None else ahead
    created = partitions.create_ahead(ahead)
    existing = partitions.partitions()
    details = {
        "created": created,
        "ahead": ahead,
        "partitions": len(existing),
        "last_until": existing[-1].end.isoformat() if existing else None,
        "default_rows": partitions.default_rows(),
    }
    until = f"; partitions until {existing[-1].end:%Y-%m-%d}" if existing else ""
    summary = f"created {len(created)} partitions ({', '.join(created) or 'none needed'}){until}"
    return Outcome(summary, details)


def audit_retention(days: int | None = None, batch: int | None = None) -> Outcome:
    """Delete audit rows older than AUDIT_RETENTION_DAYS (400); the run's own audit row counts them."""
    days = settings.AUDIT_RETENTION_DAYS if days is None else days
    cutoff = timezone.now() - timedelta(days=days)
    total, batches = _delete_older(AuditLog, cutoff, batch or settings.CHAT_RETENTION_BATCH)
    details = {"deleted": total, "retention_days": days, "cutoff": cutoff.isoformat(), "batches": batches}
    return Outcome(f"deleted {total} audit rows older than {days} days", details, changed=bool(total))
