"""Recording maintenance runs: one MaintenanceRun row, metrics and, on failure, an audit row.

The run metrics are labelled by job from the start (the registry's names), so increase()
sees a job's first run.
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from deia.audit import audit
from deia.metrics import StoredMetric, declare
from deia.redact import redact
from ops.maintenance.registry import JOBS
from ops.maintenance.runs import JobFailed, Outcome, Status
from ops.models import MaintenanceRun

log = logging.getLogger("deia.maintenance")

MAINTENANCE_RESULTS = ("ok", "warning", "failed")  # every MaintenanceRun.Status a finished run has
MAINTENANCE_RUNS = declare(
    StoredMetric(
        "deia_maintenance_runs_total",
        "counter",
        "Maintenance job runs by task and result.",
        ("result", "task"),
        initial=tuple((r, t) for r in MAINTENANCE_RESULTS for t in JOBS),
    )
)
MAINTENANCE_LAST_SUCCESS = declare(
    StoredMetric(
        "deia_maintenance_last_success_timestamp_seconds",
        "gauge",
        "Unix time of the last successful run of each maintenance task (0 = never).",
        ("task",),
        initial=tuple((t,) for t in JOBS),
    )
)


def run(job: str, *, actor: str = "celery", **kwargs: Any) -> MaintenanceRun:
    """Run the registered job `job` (keyword arguments go to its function) and record it."""
    return run_job(job, JOBS[job].func, actor=actor, **kwargs)


def run_job(job: str, fn: Callable[..., Outcome], *, actor: str = "celery", **kwargs: Any) -> MaintenanceRun:
    """Run one job and record it. Never raises for a failure of the job itself.

    The run row is created before the job starts and finished after it, each in its own
    transaction, so a job that fails (and rolls back whatever it did) still leaves its
    failed run and its audit row behind. Do not call this inside transaction.atomic().
    """
    if connection.in_atomic_block:
        # The record of a failure would roll back with the caller's transaction.
        log.warning("maintenance job %s started inside a transaction", job)
    run = MaintenanceRun.objects.create(job=job, actor=actor, host=settings.HOSTNAME)
    log.info("maintenance job started", extra={"job": job, "run": run.pk, "actor": actor})
    try:
        outcome = fn(**kwargs)
    except JobFailed as exc:
        outcome = Outcome(exc.summary, exc.details, Status.FAILED)
    except Exception as exc:
        log.exception("maintenance job %s crashed", job)
        outcome = Outcome(
            f"{type(exc).__name__}: {exc}".strip(),
            {"traceback": traceback.format_exc(limit=8)},
            Status.FAILED,
        )
    _finish(run, outcome)
    return run


def _finish(run: MaintenanceRun, outcome: Outcome) -> None:
    now = timezone.now()
    run.status = outcome.status
    run.summary = redact(outcome.summary)[:500]
    run.details = outcome.details
    run.finished_at = now
    with transaction.atomic():
        run.save(update_fields=["status", "summary", "details", "finished_at"])
        MAINTENANCE_RUNS.inc(task=run.job, result=run.status)
        if run.status in MaintenanceRun.SUCCEEDED:
            MAINTENANCE_LAST_SUCCESS.set(now.timestamp(), task=run.job)
            if outcome.changed:
                audit(
                    f"maintenance.{run.job}",
                    actor=run.actor or "celery",
                    target=run.job,
                    details={"run": run.pk, "summary": run.summary, **_short(outcome.details)},
                )
        else:
            audit(
                f"maintenance.{run.job}_error",
                actor=run.actor or "celery",
                target=run.job,
                details={"run": run.pk, "summary": run.summary, **_short(outcome.details)},
            )
    level = logging.WARNING if run.status != Status.OK else logging.INFO
    log.log(level, "maintenance job finished", extra={"job": run.job, "status": run.status, "summary": run.summary})


def _short(details: dict[str, Any]) -> dict[str, Any]:
    """The scalar part of a run's details: enough for the audit row, not a whole report."""
    return {k: v for k, v in details.items() if isinstance(v, str | int | float | bool) and k != "traceback"}
