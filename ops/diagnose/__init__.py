"""The runbooks' checks as code: `manage.py diagnose`, the Operations page, the health report.

Each check measures one thing and returns OK / WARN / CRIT with the measured value, the
threshold it was held against and, when not OK, the next step from the runbook. The
dependencies are measured by the same probes the health endpoints and the bot runner use
(`deia.probes.services`, `bots.llm.probe_llm`); this package only grades what they find.
Every check runs in its own thread with a deadline, so a dead dependency costs a timeout,
not a hang. When the database is unreachable the checks that read it say "not checked"
instead of piling more CRIT lines onto the one that matters.

Modules: `grading` (Check, Level), one module per group of checks (`database`,
`services`, `llm`, `host`, `records`), `run` (the list of checks and the run), `cached`
(the Operations page's shared copy).
"""

from __future__ import annotations

from ops.diagnose.cached import CACHE_KEY, RUNNING_KEY, Diagnosis, cached_diagnose
from ops.diagnose.database import (
    check_chat_partitions,
    check_database,
    check_db_connections,
    check_idle_in_transaction,
    check_slow_queries,
)
from ops.diagnose.grading import Check, Level, graded, ok
from ops.diagnose.host import check_disk_backups, check_disk_root, check_memory
from ops.diagnose.llm import check_llm
from ops.diagnose.records import check_audit_errors, check_bots, check_last_backup, check_last_restore_check
from ops.diagnose.run import CHECKS, overall, run_diagnose, summary
from ops.diagnose.services import check_broker_reachable, check_redis, check_web, check_workers

__all__ = [
    "CACHE_KEY",
    "CHECKS",
    "RUNNING_KEY",
    "Check",
    "Diagnosis",
    "Level",
    "cached_diagnose",
    "check_audit_errors",
    "check_bots",
    "check_broker_reachable",
    "check_chat_partitions",
    "check_database",
    "check_db_connections",
    "check_disk_backups",
    "check_disk_root",
    "check_idle_in_transaction",
    "check_last_backup",
    "check_last_restore_check",
    "check_llm",
    "check_memory",
    "check_redis",
    "check_slow_queries",
    "check_web",
    "check_workers",
    "graded",
    "ok",
    "overall",
    "run_diagnose",
    "summary",
]
