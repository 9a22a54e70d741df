"""The default schedules, installed by `manage.py setup` (and `manage.py install_schedules`).

They live in django-celery-beat's tables, so operators edit them in the admin. install()
creates what is missing and leaves what exists alone (an operator's edit survives a
re-run of setup), except that a missing expiry is added and purge_messages is enabled
exactly when CHAT_RETENTION_DAYS is set; reset=True puts every schedule back to these defaults.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings
from django.db import transaction
from django_celery_beat.models import CrontabSchedule, IntervalSchedule, PeriodicTask, PeriodicTasks

from deia.audit import audit


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


def _m(job: str, cron: tuple[str, str, str, str], description: str) -> Schedule:
    return Schedule(f"maintenance: {job}", f"ops.tasks.{job}", "maintenance", cron=cron, description=description)


# Times in UTC, spread so that no two heavy jobs overlap.
SCHEDULES: tuple[Schedule, ...] = (
    Schedule(
        "reconcile bots",
        "bots.tasks.reconcile_all",
        "bots",
        every_seconds=10,
        description="every 10 s",
        expire_seconds=10,
    ),
    _m("health_report", ("0", "6", "*", "*"), "daily 06:00"),
    _m("backup", ("30", "2", "*", "*"), "daily 02:30"),
    _m("rotate_backups", ("0", "4", "*", "*"), "daily 04:00"),
    _m("cleanup_logs", ("15", "4", "*", "*"), "daily 04:15"),
    _m("purge_messages", ("30", "3", "*", "*"), "daily 03:30, when CHAT_RETENTION_DAYS is set"),
    _m("audit_retention", ("45", "3", "*", "*"), "daily 03:45"),
    _m("vacuum", ("0", "5", "1", "*"), "weekly, Monday 05:00"),
    _m("db_report", ("30", "5", "1", "*"), "weekly, Monday 05:30"),
    _m("redis_bgsave", ("45", "5", "1", "*"), "weekly, Monday 05:45"),
    _m("verify_backup", ("0", "7", "*", "1"), "monthly, the 1st at 07:00"),
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


def _enabled(schedule: Schedule) -> bool:
    return schedule.task != "ops.tasks.purge_messages" or bool(settings.CHAT_RETENTION_DAYS)


def install(*, reset: bool = False, actor: str = "setup") -> dict[str, int]:
    """Create the missing schedules (all of them back to defaults with reset); audit a change once."""
    created = updated = 0
    with transaction.atomic():
        for schedule in SCHEDULES:
            defaults = {
                **_schedule_fields(schedule),
                "task": schedule.task,
                "queue": schedule.queue,
                "enabled": _enabled(schedule),
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
            elif task.enabled != defaults["enabled"] and schedule.task == "ops.tasks.purge_messages":
                task.enabled = defaults["enabled"]
                task.save(update_fields=["enabled"])
                updated += 1
        if created or updated:
            # Beat's DatabaseScheduler notices changes through this marker (update() sends no signal).
            PeriodicTasks.update_changed()
            audit(
                "ops.schedules_install",
                actor=actor,
                target="beat schedules",
                details={"created": created, "updated": updated, "reset": reset},
            )
    return {"created": created, "updated": updated, "total": len(SCHEDULES)}
