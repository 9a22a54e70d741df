"""What a job returns (Outcome, or JobFailed raised) and what the recorded runs say.

The recording itself (the run row, metrics and audit) is ops.maintenance.recording; this
module sits below the jobs, so that a job and diagnose can both import it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ops.models import MaintenanceRun

Status = MaintenanceRun.Status


@dataclass
class Outcome:
    """What a job returns: ok or warning, a one-line summary and its measurements."""

    summary: str
    details: dict[str, Any] = field(default_factory=dict)
    status: str = Status.OK
    # True when the job changed state an operator cares about (wrote a backup, deleted
    # files or rows): the run is then audited as maintenance.<job>, once.
    changed: bool = False


class JobFailed(Exception):
    """An expected failure (a mismatch, a full disk): summary and details go to the run."""

    def __init__(self, summary: str, details: dict[str, Any] | None = None):
        super().__init__(summary)
        self.summary = summary
        self.details = details or {}


def last_success(job: str) -> MaintenanceRun | None:
    return MaintenanceRun.objects.filter(job=job, status__in=MaintenanceRun.SUCCEEDED).first()


def last_finished(job: str) -> MaintenanceRun | None:
    return MaintenanceRun.objects.filter(job=job).exclude(status=Status.RUNNING).first()
