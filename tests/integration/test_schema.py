"""The tables operators query by hand: the guide's SQL must work as written."""

from __future__ import annotations

import pytest
from django.db import connection

from bots.models import Bot, ChatMessage, Role
from deia.audit import audit

pytestmark = pytest.mark.django_db


def test_the_guides_sql_works_against_postgresql():
    bot = Bot.objects.create(name="Support", slug="support")
    ChatMessage.objects.create(bot=bot, role=Role.USER, content="hello")
    ChatMessage.objects.create(bot=bot, role=Role.ASSISTANT, content="hi", latency_ms=12)
    audit("bot.start", actor="reconcile", target=bot.slug)
    audit("bot.start_error", actor="reconcile", target=bot.slug, details={"error": "port in use"})
    with connection.cursor() as cursor:
        assert connection.vendor == "postgresql"
        cursor.execute("SELECT COUNT(*) FROM chat_messages;")
        assert cursor.fetchone() == (2,)
        cursor.execute("SELECT * FROM audit_logs WHERE action LIKE '%error%' ORDER BY created_at DESC LIMIT 20;")
        columns = [c.name for c in cursor.description]
        rows = [dict(zip(columns, row, strict=True)) for row in cursor.fetchall()]
    assert [r["action"] for r in rows] == ["bot.start_error"]
    assert {"created_at", "actor", "action", "target", "details", "ip"} <= set(columns)
    assert rows[0]["actor"] == "reconcile"


def test_chat_messages_has_the_bot_created_at_desc_index():
    with connection.cursor() as cursor:
        cursor.execute("SELECT indexdef FROM pg_indexes WHERE tablename = 'chat_messages'")
        definitions = [row[0] for row in cursor.fetchall()]
    assert any("(bot_id, created_at DESC)" in d for d in definitions), definitions


def test_audit_keeps_the_actor_name_when_the_user_is_deleted(django_user_model):
    user = django_user_model.objects.create_user("alice", password="x")
    row = audit("bot.stop", user=user, target="support")
    user.delete()
    row.refresh_from_db()
    assert row.user is None
    assert row.actor == "alice"
