"""Run every diagnose check, each in its own thread with a deadline; the overall level."""

from __future__ import annotations

import time
from collections.abc import Callable

from django.conf import settings

from deia.probes import run_in_thread
from ops.diagnose.database import (
    check_chat_partitions,
    check_database,
    check_db_connections,
    check_idle_in_transaction,
    check_slow_queries,
)
from ops.diagnose.grading import Check, Level
from ops.diagnose.host import check_disk_backups, check_disk_root, check_memory
from ops.diagnose.llm import check_llm
from ops.diagnose.records import check_audit_errors, check_bots, check_last_backup, check_last_restore_check
from ops.diagnose.services import check_broker_reachable, check_redis, check_web, check_workers

# name -> (check, reads the database)
CHECKS: dict[str, tuple[Callable[[], Check], bool]] = {
    "web": (check_web, False),
    "database": (check_database, True),
    "db_connections": (check_db_connections, True),
    "slow_queries": (check_slow_queries, True),
    "idle_in_transaction": (check_idle_in_transaction, True),
    "chat_partitions": (check_chat_partitions, True),
    "redis": (check_redis, False),
    "broker": (check_broker_reachable, False),
    "workers": (check_workers, False),
    "llm": (check_llm, True),
    "disk_root": (check_disk_root, False),
    "disk_backups": (check_disk_backups, False),
    "memory": (check_memory, False),
    "last_backup": (check_last_backup, True),
    "last_restore_check": (check_last_restore_check, True),
    "audit_errors": (check_audit_errors, True),
    "bots": (check_bots, True),
}


def _in_thread(name: str, fn: Callable[[], Check]):
    def call() -> Check:
        return fn()

    call.__name__ = f"diagnose_{name}"
    return run_in_thread(call)


def _collect(name: str, future, deadline: float) -> Check:
    try:
        return future.result(timeout=max(0.0, deadline - time.monotonic()))
    except TimeoutError:
        return Check(name, Level.CRIT, f"no answer within {settings.DIAGNOSE_TIMEOUT:g} s", "answers", "investigate")
    except Exception as exc:  # noqa: BLE001 - a check that breaks is a finding too
        return Check(name, Level.WARN, f"check failed: {type(exc).__name__}: {exc}"[:300], "", "investigate")


def run_diagnose() -> list[Check]:
    """Every check, the database first so that its dependants can stand down if it is down."""
    timeout = settings.DIAGNOSE_TIMEOUT
    database = _collect("database", _in_thread("database", check_database), time.monotonic() + timeout)
    db_down = database.level == Level.CRIT
    futures = {
        name: _in_thread(name, fn)
        for name, (fn, needs_db) in CHECKS.items()
        if name != "database" and not (needs_db and db_down)
    }
    deadline = time.monotonic() + timeout
    results = []
    for name, (_fn, _needs_db) in CHECKS.items():
        if name == "database":
            results.append(database)
        elif name in futures:
            results.append(_collect(name, futures[name], deadline))
        else:
            results.append(Check(name, Level.WARN, "not checked: the database is unreachable", "", "fix the database"))
    return results


def overall(checks: list[Check]) -> Level:
    return max((c.level for c in checks), default=Level.OK)


def summary(checks: list[Check]) -> str:
    counts = {level: sum(1 for c in checks if c.level == level) for level in Level}
    return f"diagnose: {overall(checks).name} ({', '.join(f'{n} {level.name}' for level, n in counts.items())})"
