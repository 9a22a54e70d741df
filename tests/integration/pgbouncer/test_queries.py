"""The app's queries that need care behind PgBouncer's transaction pooling, run through it by
the app's own code in child processes (DATABASE_POOLER=pgbouncer): the audit log's export
(no server-side cursors: one query per chunk), the lifecycle's advisory locks (transaction
scoped), and the commands that go past PgBouncer (migrations, backups)."""

from __future__ import annotations

import json
import os
from urllib.parse import urlsplit

from tests.integration.pgbouncer.conftest import Pooled

EXPORT = """
import json, tracemalloc
from datetime import UTC, datetime, timedelta
from django.db import connection
from django.test.utils import CaptureQueriesContext
from deia import audit_export
from deia.models import AuditLog

audit_export.CHUNK_SIZE = 50
base = datetime(2026, 3, 5, 12, tzinfo=UTC)

def fill(n):
    AuditLog.objects.filter(action__startswith="pooled.").delete()
    # Ties in every sorted column, and NULLs in ip and user_id, so each chunk boundary matters.
    AuditLog.objects.bulk_create(
        AuditLog(created_at=base + timedelta(seconds=i // 7), action=f"pooled.{i % 3}", actor="t",
                 target=str(i), ip=None if i % 5 else "10.0.0.1", details={"i": i})
        for i in range(n)
    )

def streamed(queryset):
    return sum(1 for _ in audit_export.csv_lines(queryset)) - 1

fill(500)
rows = AuditLog.objects.filter(action__startswith="pooled.")
out = {"server_side_cursors": not connection.settings_dict.get("DISABLE_SERVER_SIDE_CURSORS"), "orders": {}}
orders = (["-created_at", "-id"], ["-action", "-created_at", "-pk"], ["ip", "-id"], ["user_id", "created_at", "id"])
for order in orders:
    ordered = rows.order_by(*order)
    with CaptureQueriesContext(connection) as queries:
        got = list(audit_export._rows(ordered))
    out["orders"][",".join(order)] = [got == list(ordered.values_list(*audit_export.COLUMNS)), len(queries)]
peaks = []
for n in (500, 5000):
    fill(n)
    tracemalloc.start()
    count = streamed(rows.order_by("-created_at", "-id"))
    peaks.append(tracemalloc.get_traced_memory()[1])
    tracemalloc.stop()
    assert count == n, count
out["peaks"] = peaks
AuditLog.objects.filter(action__startswith="pooled.").delete()
print(json.dumps(out))
"""


def test_the_audit_export_reads_a_chunk_per_query_in_the_lists_order_with_flat_memory(pooled: Pooled):
    out = json.loads(pooled.manage("shell", "-c", EXPORT).strip().splitlines()[-1])
    assert out["server_side_cursors"] is False
    for order, (same, queries) in out["orders"].items():
        assert same, order
        assert queries >= 500 // 50, (order, queries)  # a query per chunk, not one for all
    small, large = out["peaks"]
    assert large < small * 2, (small, large)  # ten times the rows, not ten times the memory


FLEET_LOCK = """
import json, threading
from django.db import connection, transaction
from bots.lifecycle import state

held, released, out = threading.Event(), threading.Event(), {}

def holder():
    with transaction.atomic():
        state.fleet_lock()
        held.set()
        released.wait(30)
    connection.close()

def other():
    held.wait(30)
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_xact_lock(%s)", [state._FLEET_LOCK_KEY])
        out["while_held"] = cursor.fetchone()[0]
        released.set()
        thread.join(30)
        # The holder's transaction is over: its server connection went back to the pool
        # without the lock, whichever client it serves now.
        for _ in range(5):
            cursor.execute("SELECT pg_try_advisory_xact_lock(%s)", [state._FLEET_LOCK_KEY])
            out.setdefault("after", []).append(cursor.fetchone()[0])
    connection.close()

thread = threading.Thread(target=holder)
thread.start()
other()
print(json.dumps(out))
"""


def test_the_fleet_lock_holds_for_its_transaction_and_not_after(pooled: Pooled):
    out = json.loads(pooled.manage("shell", "-c", FLEET_LOCK).strip().splitlines()[-1])
    assert out == {"while_held": False, "after": [True] * 5}


def test_migrations_and_backups_go_past_pgbouncer(pooled: Pooled, tmp_path):
    assert pooled.queries_after_migrate == 0  # the fixture's `migrate` went past it
    before = pooled.bouncer_queries()
    backup_dir = tmp_path / "backups"
    pg_bin = {"PG_BIN_DIR": "/usr/lib/postgresql/15/bin"} if os.path.isdir("/usr/lib/postgresql/15/bin") else {}
    said = pooled.manage("backup", env={"BACKUP_DIR": str(backup_dir), **pg_bin})
    assert list(backup_dir.glob("*.dump")), said
    assert pooled.bouncer_queries() == before
    # The app's own commands go through it; pg_dump, when a Celery worker runs the backup, does not.
    target = "from ops.maintenance.pg import Target; from bots.models import Bot; Bot.objects.count(); "
    port = pooled.manage("shell", "-c", target + "print(Target.default().port)").strip().splitlines()[-1]
    assert pooled.bouncer_queries() > before
    assert port == str(urlsplit(pooled.direct_url).port) != str(pooled.bouncer.port)
