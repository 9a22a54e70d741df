"""What a job returns (Outcome, or JobFailed raised) and what the recorded runs say.

The recording itself (the run row, metrics and audit) is ops.maintenance.recording; this
module sits below the jobs, so that a job and diagnose can both import it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db.models import Exists
from django_celery_beat.models import PeriodicTask

from ops.models import MaintenanceRun

Status = MaintenanceRun.Status

# A backup of a large database may outlast the global limits for bot tasks: a pg_dump may
# take MAINTENANCE_COMMAND_TIMEOUT, and the task a little longer (the soft limit is a
# minute shorter than the hard one). Every job's default (ops.maintenance.registry).
TIME_LIMIT = settings.MAINTENANCE_COMMAND_TIMEOUT + 120


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


def schedule_name(job: str) -> str:
    """The name of the job's periodic task (ops.schedules installs it)."""
    return f"maintenance: {job}"


@dataclass(frozen=True)
class FirstRun:
    """A job's first scheduled run, while none of its runs has finished yet."""

    at: datetime  # when beat runs it first
    deadline: datetime  # `at` plus the time limit: by then that run has ended, one way or the other


def first_run(job: str, time_limit: float = TIME_LIMIT) -> FirstRun | None:
    """When the job's schedule first runs it, while no run of the job has finished (one query).

    None once a run has finished (ok or failed), or when its schedule is missing, disabled
    or not a crontab: nothing is pending then. The time is beat's own: the schedule's next
    time after it was installed or last edited (django-celery-beat starts from date_changed
    while last_run_at is unset); once beat has sent it once, the time it sent it.
    """
    finished = MaintenanceRun.objects.filter(job=job).exclude(status=Status.RUNNING)
    task = (
        PeriodicTask.objects.filter(name=schedule_name(job), enabled=True, crontab__isnull=False)
        .select_related("crontab")
        .annotate(finished=Exists(finished))
        .first()
    )
    if task is None or task.finished or task.total_run_count > 1:
        return None
    if task.total_run_count == 1 and task.last_run_at is not None:
        at = task.last_run_at
    else:
        start, delta, _now = task.crontab.schedule.remaining_delta(task.last_run_at or task.date_changed)
        at = start + delta
    return FirstRun(at, at + timedelta(seconds=time_limit))
