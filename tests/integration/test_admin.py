"""The admin console: bot list, read-only audit log, audited sign-in and sign-out."""

from __future__ import annotations

import pytest
from django.urls import reverse

from bots.models import Bot, ChatMessage, Role, Status
from deia.audit import audit
from deia.models import AuditLog

pytestmark = pytest.mark.django_db


@pytest.fixture
def entry():
    return audit("bot.start", actor="reconcile", target="support")


def test_audit_log_cannot_be_added_changed_or_deleted_by_a_superuser(admin_client, entry):
    before = AuditLog.objects.count()
    assert admin_client.get(reverse("admin:deia_auditlog_add")).status_code == 403
    assert admin_client.post(reverse("admin:deia_auditlog_add"), {"action": "forged"}).status_code == 403
    change_url = reverse("admin:deia_auditlog_change", args=[entry.pk])
    page = admin_client.get(change_url)
    assert page.status_code == 200  # viewing is allowed ...
    assert b'name="_save"' not in page.content  # ... but there is nothing to save
    admin_client.post(change_url, {"actor": "mallory", "action": "bot.start", "target": "x"})
    delete_url = reverse("admin:deia_auditlog_delete", args=[entry.pk])
    assert admin_client.get(delete_url).status_code == 403
    assert admin_client.post(delete_url, {"post": "yes"}).status_code == 403
    changelist = reverse("admin:deia_auditlog_changelist")
    admin_client.post(changelist, {"action": "delete_selected", "_selected_action": [entry.pk], "post": "yes"})
    entry.refresh_from_db()
    assert entry.actor == "reconcile"
    assert AuditLog.objects.count() == before


def test_audit_log_list_is_newest_first_and_filterable(admin_client):
    audit("bot.start", actor="reconcile", target="a")
    audit("bot.start_error", actor="celery", target="b")
    url = reverse("admin:deia_auditlog_changelist")
    page = admin_client.get(url)
    assert page.status_code == 200
    text = page.content.decode()
    assert text.index("bot.start_error") < text.index(">a<")
    filtered = admin_client.get(url, {"action": "bot.start_error"})
    assert list(filtered.context["cl"].result_list.values_list("target", flat=True)) == ["b"]
    by_actor = admin_client.get(url, {"actor": "reconcile"})
    assert list(by_actor.context["cl"].result_list.values_list("target", flat=True)) == ["a"]


def test_admin_login_and_logout_are_audited(client, django_user_model):
    django_user_model.objects.create_superuser("ops", password="correct-horse-battery")
    response = client.post(
        reverse("admin:login"), {"username": "ops", "password": "correct-horse-battery", "next": "/admin/"}
    )
    assert response.status_code == 302
    login = AuditLog.objects.get(action="auth.login")
    assert (login.actor, login.ip) == ("ops", "127.0.0.1")
    client.post(reverse("admin:logout"))
    assert AuditLog.objects.filter(action="auth.logout", actor="ops").count() == 1


def test_a_failed_login_is_audited_without_the_password(client):
    client.post(reverse("admin:login"), {"username": "ops", "password": "wrong-password"})
    row = AuditLog.objects.get(action="auth.login_failed")
    assert row.actor == "ops"
    assert "wrong-password" not in str(row.details)


def test_bot_list_shows_the_operator_columns_with_a_bounded_query_count(admin_client, django_assert_max_num_queries):
    for i in range(20):
        bot = Bot.objects.create(name=f"Bot {i}", slug=f"bot-{i}")
        ChatMessage.objects.create(bot=bot, role=Role.USER, content="hi")
    Bot.objects.filter(slug="bot-3").update(
        status=Status.ERROR, last_error="model llama9 not found", port=18003, host="h1"
    )
    url = reverse("admin:bots_bot_changelist")
    with django_assert_max_num_queries(8):
        page = admin_client.get(url)
    text = page.content.decode()
    for column in ("Status", "Desired state", "Host:port", "Uptime", "Restart count", "Last error"):
        assert column in text
    assert "model llama9 not found" in text
    assert admin_client.get(url, {"status__exact": "error"}).context["cl"].result_count == 1
    assert admin_client.get(url, {"q": "bot-1"}).context["cl"].result_count == 11


def test_chat_messages_are_browsable_and_read_only(admin_client):
    bot = Bot.objects.create(name="Support", slug="support")
    message = ChatMessage.objects.create(bot=bot, role=Role.USER, content="where is my parcel")
    url = reverse("admin:bots_chatmessage_changelist")
    assert admin_client.get(url, {"q": "parcel"}).context["cl"].result_count == 1
    assert admin_client.get(url, {"role__exact": "assistant"}).context["cl"].result_count == 0
    assert admin_client.get(url, {"bot__id__exact": bot.pk}).context["cl"].result_count == 1
    assert admin_client.get(reverse("admin:bots_chatmessage_add")).status_code == 403
    assert (
        admin_client.post(reverse("admin:bots_chatmessage_delete", args=[message.pk]), {"post": "yes"}).status_code
        == 403
    )
