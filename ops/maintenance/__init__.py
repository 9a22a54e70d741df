"""Maintenance jobs: one plain function per job, one module per family.

JOBS maps each job's name (the MaintenanceRun.job, the `task` metric label, the Celery
task ops.tasks.<name>, the management command <name> and the audit actions
maintenance.<name> and maintenance.<name>_error) to its function. run() records
it; the Celery task and the command both go through there.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from deia.audit_actions import declare_job
from ops.maintenance.backup import backup, verify_backup
from ops.maintenance.cache import redis_bgsave
from ops.maintenance.database import audit_retention, db_report, purge_messages, vacuum
from ops.maintenance.files import cleanup_logs, rotate_backups
from ops.maintenance.report import health_report
from ops.maintenance.runs import Outcome, run_job
from ops.models import MaintenanceRun

JOBS: dict[str, Callable[..., Outcome]] = {
    "backup": backup,
    "verify_backup": verify_backup,
    "rotate_backups": rotate_backups,
    "vacuum": vacuum,
    "db_report": db_report,
    "redis_bgsave": redis_bgsave,
    "cleanup_logs": cleanup_logs,
    "purge_messages": purge_messages,
    "audit_retention": audit_retention,
    "health_report": health_report,
}
for _name in JOBS:
    declare_job(_name)


def run(job: str, *, actor: str = "celery", **kwargs: Any) -> MaintenanceRun:
    return run_job(job, JOBS[job], actor=actor, **kwargs)
