"""django-celery-beat's admin, narrowed so that a schedule cannot be used to escape permissions.

A periodic task runs a Celery task with arguments of the author's choosing, as the worker:
whoever may write one may do anything a task can. So:
- only superusers add, change or delete periodic tasks and their schedules (crontab,
  interval, solar, clocked), and only superusers get the bulk actions (run, enable, ...);
  others with a view permission may look;
- the task is chosen from ops.schedules.SCHEDULABLE_TASKS (the reconcile and the
  maintenance jobs), never typed in;
- args and kwargs must fit the task's signature (the maintenance tasks take none).

Public hooks only: the has_*_permission methods, get_actions, the form and fieldsets.
deia.admin_audit wraps these admins like every other, so every change is audited.
"""

from __future__ import annotations

import inspect
import json

from celery import current_app
from django import forms
from django.contrib import admin
from django_celery_beat import admin as beat_admin
from django_celery_beat.models import ClockedSchedule, CrontabSchedule, IntervalSchedule, PeriodicTask, SolarSchedule

from ops.schedules import SCHEDULABLE_TASKS


class SuperuserWritesMixin:
    """Only superusers add, change, delete or run bulk actions; view stays Django's."""

    def has_add_permission(self, request, *args) -> bool:
        return request.user.is_active and request.user.is_superuser

    def has_change_permission(self, request, obj=None) -> bool:
        return request.user.is_active and request.user.is_superuser

    def has_delete_permission(self, request, obj=None) -> bool:
        return request.user.is_active and request.user.is_superuser

    def get_actions(self, request):
        return super().get_actions(request) if request.user.is_superuser else {}


def task_choices() -> list[tuple[str, str]]:
    return [(name, name) for name in SCHEDULABLE_TASKS]


class SchedulableTaskForm(beat_admin.PeriodicTaskForm):
    # The free "registered task" list (every task the worker knows, and any value accepted) is gone.
    regtask = None
    task = forms.ChoiceField(label="Task", choices=task_choices, help_text="The reconcile or a maintenance job")

    def clean(self):
        if "task" not in self.cleaned_data:
            return self.cleaned_data  # not one of the choices: the field says so (the base clean would fail)
        data = super().clean()
        task, args, kwargs = data.get("task"), data.get("args"), data.get("kwargs")
        if task in SCHEDULABLE_TASKS and args is not None and kwargs is not None:
            current_app.loader.import_default_modules()
            try:
                inspect.signature(current_app.tasks[task].run).bind(*json.loads(args), **json.loads(kwargs))
            except (KeyError, TypeError, ValueError) as exc:
                raise forms.ValidationError(f"{task} does not take these arguments: {exc}") from exc
        return data


def _without_regtask(fieldsets) -> tuple:
    return tuple(
        (name, {**options, "fields": tuple(f for f in options["fields"] if f != "regtask")})
        for name, options in fieldsets
    )


class SchedulablePeriodicTaskAdmin(SuperuserWritesMixin, beat_admin.PeriodicTaskAdmin):
    form = SchedulableTaskForm
    fieldsets = _without_regtask(beat_admin.PeriodicTaskAdmin.fieldsets)


SCHEDULE_ADMINS = {
    CrontabSchedule: beat_admin.CrontabScheduleAdmin,
    IntervalSchedule: beat_admin.IntervalScheduleAdmin,
    SolarSchedule: beat_admin.SolarScheduleAdmin,
    ClockedSchedule: beat_admin.ClockedScheduleAdmin,
}


def register(site: admin.AdminSite = admin.site) -> None:
    """Replace django-celery-beat's registrations (its admin module registered them on import)."""
    admins = {PeriodicTask: SchedulablePeriodicTaskAdmin}
    for model, base in SCHEDULE_ADMINS.items():
        admins[model] = type(f"Superuser{base.__name__}", (SuperuserWritesMixin, base), {})
    for model, model_admin in admins.items():
        if site.is_registered(model):
            site.unregister(model)
        site.register(model, model_admin)
