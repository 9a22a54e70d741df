"""Every scheduled job is installed by setup, once, and operators' edits survive."""

from __future__ import annotations

import io

import pytest
from django.core.management import call_command
from django_celery_beat.models import PeriodicTask

from deia.celery import app
from ops.maintenance import JOBS
from ops.schedules import SCHEDULES, install

pytestmark = pytest.mark.django_db(transaction=True)


def test_every_scheduled_job_is_present_after_a_fresh_setup(settings, tmp_path):
    settings.STATIC_ROOT = tmp_path / "static"
    settings.DEIA_ADMIN_PASSWORD = "a-long-operator-password"
    settings.CHAT_RETENTION_DAYS = None
    call_command("setup", "--no-demo", stdout=io.StringIO())
    tasks = {t.name: t for t in PeriodicTask.objects.select_related("interval", "crontab")}
    reconcile = tasks["reconcile bots"]
    assert (reconcile.task, reconcile.queue, reconcile.interval.every, reconcile.interval.period) == (
        "bots.tasks.reconcile_all",
        "bots",
        10,
        "seconds",
    )
    for job in JOBS:
        task = tasks[f"maintenance: {job}"]
        assert (task.task, task.queue) == (f"ops.tasks.{job}", "maintenance")
        assert task.crontab is not None
        assert task.enabled is (job != "purge_messages")
    assert tasks["maintenance: backup"].crontab.hour == "2"
    assert tasks["maintenance: vacuum"].crontab.day_of_week == "1"  # weekly
    assert tasks["maintenance: verify_backup"].crontab.day_of_month == "1"  # monthly
    assert len(tasks) == len(SCHEDULES)


def test_installing_again_duplicates_nothing_and_keeps_an_operators_edit(settings):
    settings.CHAT_RETENTION_DAYS = None
    install()
    PeriodicTask.objects.filter(name="maintenance: backup").update(enabled=False)
    settings.CHAT_RETENTION_DAYS = 90
    result = install()
    assert result["created"] == 0
    assert PeriodicTask.objects.count() == len(SCHEDULES)
    assert PeriodicTask.objects.get(name="maintenance: backup").enabled is False
    assert PeriodicTask.objects.get(name="maintenance: purge_messages").enabled is True
    install(reset=True)
    assert PeriodicTask.objects.get(name="maintenance: backup").enabled is True


def test_installing_schedules_is_audited_once_when_it_changes_something(settings):
    from deia.models import AuditLog

    settings.CHAT_RETENTION_DAYS = None
    install()
    install()  # nothing left to create: no second row
    rows = list(AuditLog.objects.filter(action="ops.schedules_install"))
    assert [(r.actor, r.details["created"], r.details["updated"]) for r in rows] == [("setup", len(SCHEDULES), 0)]
    call_command("install_schedules", "--reset", stdout=io.StringIO())
    latest = AuditLog.objects.filter(action="ops.schedules_install").first()
    assert latest.actor.startswith("cli") and latest.details == {"created": 0, "updated": len(SCHEDULES), "reset": True}


def test_every_maintenance_task_is_registered_with_celery():
    import bots.tasks  # noqa: F401 - autodiscovery in a worker does the same
    import ops.tasks  # noqa: F401

    for schedule in SCHEDULES:
        assert schedule.task in app.tasks
    assert app.amqp.router.route({}, "ops.tasks.backup")["queue"].name == "maintenance"
