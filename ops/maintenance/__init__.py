"""Maintenance jobs: one plain function per job, one module per family, each declared once
in ops.maintenance.registry (JOBS). run() records a run; the Celery tasks (ops.tasks), the
commands (ops.maintenance.command) and the Operations page all go through there.
"""

from __future__ import annotations

from ops.maintenance.recording import run, run_job
from ops.maintenance.registry import JOBS, Job

__all__ = ["JOBS", "Job", "run", "run_job"]
