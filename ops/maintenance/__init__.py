"""Maintenance jobs: one plain function per job, one module per family, each declared once
in ops.maintenance.registry (JOBS). A job's name is its MaintenanceRun.job, the `task`
metric label, the Celery task ops.tasks.<name>, the command <name> and the audit actions
maintenance.<name> and maintenance.<name>_error. run() records a run; the Celery tasks
(ops.tasks), the commands (ops.maintenance.command) and the Operations page all go
through there.
"""

from __future__ import annotations

from ops.maintenance.recording import run, run_job
from ops.maintenance.registry import JOBS, Job

__all__ = ["JOBS", "Job", "run", "run_job"]
