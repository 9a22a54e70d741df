"""The default schedules, installed by `manage.py setup` (and `manage.py install_schedules`).

They live in django-celery-beat's tables, so operators edit them in the admin. install()
creates what is missing and leaves what exists alone (an operator's edit survives a
re-run of setup), except that a missing expiry is added and a job with a condition
(purge_messages: CHAT_RETENTION_DAYS is set) is enabled exactly while it holds; reset=True
puts every schedule back to these defaults. The maintenance schedules come from the job
registry (ops.maintenance.registry).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from django.db import transaction
from django_celery_beat.models import CrontabSchedule, IntervalSchedule, PeriodicTask, PeriodicTasks

from deia.audit import audit
from deia.audit_actions import Action
from ops.maintenance import JOBS, Job
from ops.maintenance.runs import schedule_name


@dataclass(frozen=True)
class Schedule:
    name: str
    task: str
    queue: str
    every_seconds: int | None = None
    # crontab fields (UTC): minute hour day_of_week day_of_month
    cron: tuple[str, str, str, str] | None = None
    description: str = ""
    # A run not started within this many seconds is discarded (the next one is due anyway).
    expire_seconds: int | None = None
    # Enabled exactly while this holds, re-checked at each install; None: enabled.
    enabled_if: Callable[[], bool] | None = None

    @classmethod
    def of(cls, job: Job) -> Schedule:
        return cls(
            schedule_name(job.name),
            job.task,
            job.queue,
            cron=job.cron,
            description=job.when,
            enabled_if=job.enabled_if,
        )

    @property
    def enabled(self) -> bool:
        return self.enabled_if is None or self.enabled_if()


SCHEDULES: tuple[Schedule, ...] = (
    Schedule(
        "reconcile bots",
        "bots.tasks.reconcile_all",
        "bots",
        every_seconds=10,
        description="every 10 s",
        expire_seconds=10,
    ),
    *(Schedule.of(job) for job in JOBS.values()),
    # The System Overview's own history (ops.console.sampling); quick, so on the bots queue.
    Schedule(
        "sample figures",
        "ops.console.sample_figures",
        "bots",
        every_seconds=60,
        description="every minute",
        expire_seconds=60,
    ),
)

# The only tasks a periodic task may run: the reconcile and the maintenance jobs above. The
# schedule admin (ops.admin_beat) offers only these; a lifecycle task (stop_bot, restart_bot)
# is never schedulable.
SCHEDULABLE_TASKS: tuple[str, ...] = tuple(sorted({schedule.task for schedule in SCHEDULES}))


def _schedule_fields(schedule: Schedule) -> dict:
    if schedule.every_seconds is not None:
        interval, _ = IntervalSchedule.objects.get_or_create(
            every=schedule.every_seconds, period=IntervalSchedule.SECONDS
        )
        return {"interval": interval, "crontab": None}
    minute, hour, day_of_week, day_of_month = schedule.cron
    crontab, _ = CrontabSchedule.objects.get_or_create(
        minute=minute, hour=hour, day_of_week=day_of_week, day_of_month=day_of_month, month_of_year="*", timezone="UTC"
    )
    return {"crontab": crontab, "interval": None}


def install(*, reset: bool = False, actor: str = "setup") -> dict[str, int]:
    """Create the missing schedules (all of them back to defaults with reset); audit a change once."""
    created = updated = 0
    with transaction.atomic():
        for schedule in SCHEDULES:
            defaults = {
                **_schedule_fields(schedule),
                "task": schedule.task,
                "queue": schedule.queue,
                "enabled": schedule.enabled,
                "description": schedule.description,
                "expire_seconds": schedule.expire_seconds,
            }
            task = PeriodicTask.objects.filter(name=schedule.name).first()
            if task is None:
                PeriodicTask.objects.create(name=schedule.name, **defaults)
                created += 1
            elif reset:
                PeriodicTask.objects.filter(pk=task.pk).update(**defaults)
                updated += 1
            elif schedule.expire_seconds and task.expire_seconds is None:
                # Installs made before the expiry existed get it; an operator's own value stays.
                PeriodicTask.objects.filter(pk=task.pk).update(expire_seconds=schedule.expire_seconds)
                updated += 1
            elif schedule.enabled_if is not None and task.enabled != defaults["enabled"]:
                task.enabled = defaults["enabled"]
                task.save(update_fields=["enabled"])
                updated += 1
        if created or updated:
            # Beat's DatabaseScheduler notices changes through this marker (update() sends no signal).
            PeriodicTasks.update_changed()
            audit(
                Action.OPS_SCHEDULES_INSTALL,
                actor=actor,
                target="beat schedules",
                details={"created": created, "updated": updated, "reset": reset},
            )
    return {"created": created, "updated": updated, "total": len(SCHEDULES)}
