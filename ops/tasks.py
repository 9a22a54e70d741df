"""Celery tasks of the maintenance jobs (queue "maintenance", routed in settings).

Thin: each records one run of its job through ops.maintenance.run and returns the run's
id. Beat starts them on the schedules of ops.schedules; the Operations page enqueues them.

They take no arguments at all: a schedule (periodic-task args/kwargs) cannot name an actor
(the run's actor is always "celery"; who asked from the Operations page is in the
maintenance.enqueue audit row) nor a file (verify_backup checks the latest backup in
BACKUP_DIR). Extra arguments are a TypeError, and the task does not run.
"""

from __future__ import annotations

from celery import shared_task
from django.conf import settings

from ops import maintenance

# A backup of a large database may outlast the global limits for bot tasks.
LIMITS = {
    "soft_time_limit": settings.MAINTENANCE_COMMAND_TIMEOUT + 60,
    "time_limit": settings.MAINTENANCE_COMMAND_TIMEOUT + 120,
}


ACTOR = "celery"


def _run(job: str) -> int:
    return maintenance.run(job, actor=ACTOR).pk


@shared_task(**LIMITS)
def backup() -> int:
    return _run("backup")


@shared_task(**LIMITS)
def verify_backup() -> int:
    return _run("verify_backup")


@shared_task(**LIMITS)
def rotate_backups() -> int:
    return _run("rotate_backups")


@shared_task(**LIMITS)
def vacuum() -> int:
    return _run("vacuum")


@shared_task(**LIMITS)
def db_report() -> int:
    return _run("db_report")


@shared_task(**LIMITS)
def redis_bgsave() -> int:
    return _run("redis_bgsave")


@shared_task(**LIMITS)
def cleanup_logs() -> int:
    return _run("cleanup_logs")


@shared_task(**LIMITS)
def purge_messages() -> int:
    return _run("purge_messages")


@shared_task(**LIMITS)
def audit_retention() -> int:
    return _run("audit_retention")


@shared_task(**LIMITS)
def health_report() -> int:
    return _run("health_report")
