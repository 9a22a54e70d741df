"""Schedules cannot be used to escape permissions (issue 10, part 6).

Only superusers write periodic tasks and their schedules; the task is one of the reconcile
and the maintenance jobs; tasks take no actor nor path; deleting a bot is no task argument.
"""

from __future__ import annotations

import inspect

import pytest
from django.contrib.auth.models import Permission
from django.urls import reverse
from django_celery_beat.models import CrontabSchedule, IntervalSchedule, PeriodicTask

from bots import lifecycle
from bots import tasks as bot_tasks
from bots.models import Bot, Status
from deia.models import AuditLog
from ops import tasks as ops_tasks
from ops.maintenance import JOBS
from ops.models import MaintenanceRun
from ops.schedules import SCHEDULABLE_TASKS

pytestmark = pytest.mark.django_db
ADD = reverse("admin:django_celery_beat_periodictask_add")


@pytest.fixture
def every_minute() -> IntervalSchedule:
    return IntervalSchedule.objects.create(every=60, period=IntervalSchedule.SECONDS)


def schedule_form(interval: IntervalSchedule, **fields) -> dict:
    return {
        "name": "nightly backup",
        "task": "ops.tasks.backup",
        "enabled": "on",
        "description": "",
        "interval": interval.pk,
        "args": "[]",
        "kwargs": "{}",
        "headers": "{}",
        "queue": "maintenance",
        **fields,
    }


@pytest.fixture
def scheduler(make_user):
    """Staff holding every permission django-celery-beat declares, but not a superuser."""
    user = make_user()
    user.user_permissions.add(*Permission.objects.filter(content_type__app_label="django_celery_beat"))
    return user


def test_a_non_superuser_with_every_schedule_permission_cannot_add_a_task(admin_as, scheduler, every_minute):
    client = admin_as(scheduler)
    assert client.get(ADD).status_code == 403
    assert client.post(ADD, schedule_form(every_minute)).status_code == 403
    assert not PeriodicTask.objects.exists()


def test_nor_change_delete_or_run_one(admin_as, admin_user, scheduler, every_minute, redis_client):
    task = PeriodicTask.objects.create(
        name="reconcile", task="bots.tasks.reconcile_all", interval=every_minute, queue="bots"
    )
    client = admin_as(scheduler)
    change = reverse("admin:django_celery_beat_periodictask_change", args=[task.pk])
    page = client.get(change)
    assert page.status_code == 200 and 'name="_save"' not in page.content.decode()  # a view, not a form
    edit = schedule_form(every_minute, name="reconcile", task="bots.tasks.reconcile_all", kwargs='{"x": 1}')
    assert client.post(change, edit).status_code == 403
    delete = reverse("admin:django_celery_beat_periodictask_delete", args=[task.pk])
    assert client.post(delete, {"post": "yes"}).status_code == 403
    changelist = reverse("admin:django_celery_beat_periodictask_changelist")
    assert client.get(changelist).context["action_form"] is None  # no bulk actions offered
    client.post(changelist, {"action": "run_tasks", "_selected_action": [task.pk]})
    task.refresh_from_db()
    assert (task.kwargs, task.enabled) == ("{}", True)
    assert redis_client.llen("bots") == 0  # run_tasks sent nothing
    assert not AuditLog.objects.filter(action__startswith="django_celery_beat").exists()
    admin_as(admin_user).post(changelist, {"action": "run_tasks", "_selected_action": [task.pk]})
    assert redis_client.llen("bots") == 1  # what a superuser's run sends


@pytest.mark.parametrize("model", ["crontabschedule", "intervalschedule", "solarschedule", "clockedschedule"])
def test_nor_add_change_or_delete_a_schedule(admin_as, scheduler, model):
    crontab = CrontabSchedule.objects.create(minute="0", hour="3")
    client = admin_as(scheduler)
    assert client.get(reverse(f"admin:django_celery_beat_{model}_add")).status_code == 403
    if model == "crontabschedule":
        change = reverse("admin:django_celery_beat_crontabschedule_change", args=[crontab.pk])
        assert client.post(change, {"minute": "*", "hour": "*"}).status_code == 403
        delete = reverse("admin:django_celery_beat_crontabschedule_delete", args=[crontab.pk])
        assert client.post(delete, {"post": "yes"}).status_code == 403
        crontab.refresh_from_db()
        assert (crontab.minute, crontab.hour) == ("0", "3")


def test_the_task_choices_are_the_reconcile_and_the_maintenance_jobs_only(admin_client):
    form = admin_client.get(ADD).context["adminform"].form
    assert [value for value, _ in form.fields["task"].choices] == list(SCHEDULABLE_TASKS)
    expected = {"bots.tasks.reconcile_all", "ops.console.sample_figures", *(f"ops.tasks.{job}" for job in JOBS)}
    assert set(SCHEDULABLE_TASKS) == expected
    assert "regtask" not in form.fields


def test_a_superuser_cannot_schedule_another_task_even_through_the_registered_task_field(admin_client, every_minute):
    refused = admin_client.post(ADD, schedule_form(every_minute, task="bots.tasks.stop_bot", args="[1]"))
    assert refused.status_code == 200 and "task" in refused.context["adminform"].form.errors
    smuggled = schedule_form(every_minute, regtask="bots.tasks.stop_bot")
    assert admin_client.post(ADD, smuggled).status_code == 302
    assert PeriodicTask.objects.get().task == "ops.tasks.backup"


@pytest.mark.parametrize(
    ("task", "args", "kwargs"),
    [
        ("ops.tasks.backup", "[]", '{"actor": "mallory"}'),
        ("ops.tasks.verify_backup", "[]", '{"path": "/etc/shadow"}'),
        ("ops.tasks.verify_backup", '["/etc/shadow"]', "{}"),
        ("bots.tasks.reconcile_all", "[1]", "{}"),
    ],
)
def test_a_schedule_with_arguments_its_task_does_not_take_is_refused(admin_client, every_minute, task, args, kwargs):
    response = admin_client.post(ADD, schedule_form(every_minute, task=task, args=args, kwargs=kwargs))
    assert response.status_code == 200
    assert "does not take these arguments" in str(response.context["adminform"].form.non_field_errors())
    assert not PeriodicTask.objects.exists()


def test_a_superusers_schedule_is_saved_and_audited(admin_client, every_minute):
    assert admin_client.post(ADD, schedule_form(every_minute)).status_code == 302
    task = PeriodicTask.objects.get()
    assert task.task == "ops.tasks.backup"
    row = AuditLog.objects.get(action="django_celery_beat.periodictask.create")
    assert row.actor == "admin"


@pytest.mark.parametrize("job", list(JOBS))
def test_maintenance_tasks_take_no_actor_and_no_path(job):
    task = ops_tasks.TASKS[job]
    assert inspect.signature(task.run).parameters == {}
    with pytest.raises(TypeError):
        task(actor="mallory")
    with pytest.raises(TypeError):
        task("/etc/shadow")
    assert not MaintenanceRun.objects.exists()


def test_a_stop_task_cannot_be_told_to_delete(own_bot):
    with pytest.raises(TypeError):
        bot_tasks.stop_bot(own_bot.pk, True)
    with pytest.raises(TypeError):
        bot_tasks.stop_bot(own_bot.pk, delete=True)
    assert bot_tasks.stop_bot(own_bot.pk) == "stopped"
    assert Bot.objects.filter(pk=own_bot.pk).exists()
    assert not AuditLog.objects.filter(action="bot.deleted").exists()


def test_an_operators_delete_of_a_running_bot_is_finished_by_the_stop_from_the_row_not_an_argument(
    own_bot, settings, django_capture_on_commit_callbacks
):
    Bot.objects.filter(pk=own_bot.pk).update(status=Status.RUNNING, pid=2**22 - 7, host=settings.HOSTNAME, port=18398)
    with django_capture_on_commit_callbacks() as callbacks:
        assert lifecycle.request_delete(own_bot, actor="test") is False
    assert Bot.objects.get(pk=own_bot.pk).delete_requested is True
    assert len(callbacks) == 1  # stop_bot(bot id) on the bot's host queue
    assert bot_tasks.stop_bot(own_bot.pk) == "stopped"
    assert not Bot.objects.filter(pk=own_bot.pk).exists()
    assert list(AuditLog.objects.order_by("id").values_list("action", flat=True)) == [
        "bot.delete",
        "bot.stopped",
        "bot.deleted",
    ]
