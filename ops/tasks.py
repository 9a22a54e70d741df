"""Celery tasks of the maintenance jobs: one per job of the registry, named ops.tasks.<job>.

Thin: each records one run of its job through ops.maintenance.run and returns the run's
id. Beat starts them on the schedules of ops.schedules; the Operations page enqueues them.
The names are stable: periodic tasks stored in the database call them by name.

They take no arguments at all: a schedule (periodic-task args/kwargs) cannot name an actor
(the run's actor is always "celery"; who asked from the Operations page is in the
maintenance.enqueue audit row) nor a file (verify_backup checks the latest backup in
BACKUP_DIR). Extra arguments are a TypeError, and the task does not run.
"""

from __future__ import annotations

from celery import Task, shared_task

from ops import maintenance
from ops.console.tasks import sample_figures  # noqa: F401  (registered with the other ops tasks)
from ops.maintenance import JOBS, Job

ACTOR = "celery"


def _task(job: Job) -> Task:
    def run() -> int:
        return maintenance.run(job.name, actor=ACTOR).pk

    run.__name__ = run.__qualname__ = job.name
    run.__doc__ = job.description
    return shared_task(name=job.task, queue=job.queue, soft_time_limit=job.soft_time_limit, time_limit=job.time_limit)(
        run
    )


TASKS: dict[str, Task] = {name: _task(job) for name, job in JOBS.items()}
