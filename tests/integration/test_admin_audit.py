"""Every change made through the admin writes one audit row, for every model there."""

from __future__ import annotations

import re

import pytest
from django.contrib import admin
from django.contrib.auth.models import Group
from django.urls import reverse
from django_celery_beat.models import IntervalSchedule, PeriodicTask

from bots.models import Bot
from deia.admin_audit import AuditedAdminMixin
from deia.apitokens.models import ApiToken
from deia.models import AuditLog

pytestmark = pytest.mark.django_db


def rows(prefix: str) -> list[tuple[str, str]]:
    return list(AuditLog.objects.filter(action__startswith=prefix).order_by("id").values_list("action", "actor"))


def test_every_model_in_the_admin_is_audited():
    unaudited = [m._meta.label for m, a in admin.site._registry.items() if not isinstance(a, AuditedAdminMixin)]
    assert unaudited == []


BOT_FORM = {"name": "Support", "slug": "support", "backend": "ollama", "model_name": "llama3.2", "system_prompt": ""}


def test_adding_and_editing_a_bot_in_the_admin_is_audited_once_each_with_old_and_new_values(admin_client):
    add = admin_client.post(reverse("admin:bots_bot_add"), BOT_FORM)
    assert add.status_code == 302, add.content
    bot = Bot.objects.get(slug="support")
    # A bot's admin changes use the bot's own vocabulary, as manage.py setup does.
    assert rows("bot.") == [("bot.create", "admin")]
    assert AuditLog.objects.get(action="bot.create").severity == "info"
    change = admin_client.post(
        reverse("admin:bots_bot_change", args=[bot.pk]),
        {**BOT_FORM, "model_name": "llama3.3", "system_prompt": "Be kind."},
    )
    assert change.status_code == 302, change.content
    update = AuditLog.objects.get(action="bot.update")
    assert update.details == {
        "fields": ["Model name", "System prompt"],
        "changes": {
            "model_name": {"old": "llama3.2", "new": "llama3.3"},
            "system_prompt": {"old": "", "new": "Be kind."},
        },
    }
    assert update.ip == "127.0.0.1"
    assert update.severity == "info"
    assert not AuditLog.objects.filter(action__startswith="bots.bot.").exists()


def test_changing_a_users_password_in_the_admin_is_audited_masked(admin_client, django_user_model):
    user = django_user_model.objects.create_user("alice", password="old-Secret-123")
    old_hash = user.password
    new_password = "new-Secret-456"
    response = admin_client.post(
        reverse("admin:auth_user_password_change", args=[user.pk]),
        {"password1": new_password, "password2": new_password, "usable_password": "true"},
    )
    assert response.status_code == 302, response.content
    user.refresh_from_db()
    assert user.check_password(new_password)
    row = AuditLog.objects.get(action="auth.user.update")
    assert row.target == f"auth.user:{user.pk} alice"
    assert row.details["changes"] == {"password": {"old": "***", "new": "***"}}
    stored = str(row.details)
    assert old_hash not in stored and user.password not in stored and new_password not in stored


def test_editing_a_user_records_the_fields_changed_and_leaves_the_password_out(admin_client, django_user_model):
    user = django_user_model.objects.create_user("bob", password="Secret-123", email="bob@example.com")
    operators = Group.objects.create(name="operators")
    data = {
        "groups": [operators.pk],
        "username": "bob",
        "first_name": "Bob",
        "last_name": "",
        "email": "bob@example.org",
        "is_active": "on",
        "date_joined_0": user.date_joined.strftime("%Y-%m-%d"),
        "date_joined_1": user.date_joined.strftime("%H:%M:%S"),
        "initial-date_joined_0": user.date_joined.strftime("%Y-%m-%d"),
        "initial-date_joined_1": user.date_joined.strftime("%H:%M:%S"),
    }
    response = admin_client.post(reverse("admin:auth_user_change", args=[user.pk]), data)
    assert response.status_code == 302, response.content
    row = AuditLog.objects.get(action="auth.user.update")
    assert row.details["changes"] == {
        "first_name": {"old": "", "new": "Bob"},
        "email": {"old": "bob@example.com", "new": "bob@example.org"},
        "groups": {"old": [], "new": [operators.pk]},
    }
    assert row.details["fields"] == ["First name", "Email address", "Groups"]


def test_creating_an_api_token_in_the_admin_is_audited_without_the_token(admin_client, django_user_model):
    client_user = django_user_model.objects.create_user("ci-script")
    url = reverse("admin:apitokens_apitoken_add")
    response = admin_client.post(url, {"user": client_user.pk, "name": "ci", "expires_at_0": "", "expires_at_1": ""})
    assert response.status_code == 200, response.content
    token = ApiToken.objects.get(user=client_user)
    row = AuditLog.objects.get(action="token.create")
    assert row.target == f"token {token.prefix} of ci-script"
    (key,) = re.findall(r"\b[0-9a-f]{40}\b", response.content.decode())
    assert key not in str(row.target) + str(row.details)


def test_editing_a_schedule_and_deleting_a_user_in_the_admin_are_audited(admin_client, django_user_model):
    every, _ = IntervalSchedule.objects.get_or_create(every=10, period=IntervalSchedule.SECONDS)
    task = PeriodicTask.objects.create(name="reconcile bots", task="bots.tasks.reconcile_all", interval=every)
    data = {
        "name": task.name,
        "regtask": "bots.tasks.reconcile_all",
        "task": "bots.tasks.reconcile_all",
        "interval": every.pk,
        "args": "[]",
        "kwargs": "{}",
        "headers": "{}",
        "enabled": "",
        "description": "",
        "priority": "",
        "queue": "",
        "exchange": "",
        "routing_key": "",
        "expire_seconds": "",
        "expires": "",
        "start_time_0": "",
        "start_time_1": "",
        "last_run_at_0": "",
        "last_run_at_1": "",
    }
    response = admin_client.post(reverse("admin:django_celery_beat_periodictask_change", args=[task.pk]), data)
    assert response.status_code == 302, response.content
    assert rows("django_celery_beat.periodictask") == [("django_celery_beat.periodictask.update", "admin")]
    leaver = django_user_model.objects.create_user("leaver")
    admin_client.post(reverse("admin:auth_user_delete", args=[leaver.pk]), {"post": "yes"})
    assert rows("auth.user") == [("auth.user.delete", "admin")]
