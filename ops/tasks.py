"""Celery tasks of the maintenance jobs (queue "maintenance", routed in settings).

Thin: each records one run of its job through ops.maintenance.run and returns the run's
id. Beat starts them on the schedules of ops.schedules; the Operations page enqueues them.
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


def _run(job: str, actor: str | None, **kwargs) -> int:
    return maintenance.run(job, actor=actor or "celery", **kwargs).pk


@shared_task(**LIMITS)
def backup(actor: str | None = None) -> int:
    return _run("backup", actor)


@shared_task(**LIMITS)
def verify_backup(actor: str | None = None, path: str | None = None) -> int:
    return _run("verify_backup", actor, path=path)


@shared_task(**LIMITS)
def rotate_backups(actor: str | None = None) -> int:
    return _run("rotate_backups", actor)


@shared_task(**LIMITS)
def vacuum(actor: str | None = None) -> int:
    return _run("vacuum", actor)


@shared_task(**LIMITS)
def db_report(actor: str | None = None) -> int:
    return _run("db_report", actor)


@shared_task(**LIMITS)
def redis_bgsave(actor: str | None = None) -> int:
    return _run("redis_bgsave", actor)


@shared_task(**LIMITS)
def cleanup_logs(actor: str | None = None) -> int:
    return _run("cleanup_logs", actor)


@shared_task(**LIMITS)
def purge_messages(actor: str | None = None) -> int:
    return _run("purge_messages", actor)


@shared_task(**LIMITS)
def audit_retention(actor: str | None = None) -> int:
    return _run("audit_retention", actor)


@shared_task(**LIMITS)
def health_report(actor: str | None = None) -> int:
    return _run("health_report", actor)
