"""The tables operators query by hand: the guide's SQL must work as written."""

from __future__ import annotations

import importlib

import pytest
from django.apps import apps as django_apps
from django.db import connection

from bots.models import Bot, ChatMessage, Role
from deia.audit import audit
from deia.audit_actions import Action, Severity, severity_of
from deia.models import AuditLog

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
    assert {"created_at", "actor", "action", "severity", "target", "details", "ip"} <= set(columns)
    assert rows[0]["actor"] == "reconcile"
    with connection.cursor() as cursor:
        cursor.execute("SELECT action FROM audit_logs WHERE severity = 'error' ORDER BY created_at DESC LIMIT 20;")
        assert cursor.fetchall() == [("bot.start_error",)]


def test_each_audit_row_stores_its_actions_declared_severity():
    assert audit("bot.start", actor="reconcile", target="a").severity == Severity.INFO
    assert audit(Action.BOT_CRASH, actor="reconcile", target="a").severity == Severity.WARNING
    assert audit("maintenance.backup_error", actor="celery", target="backup").severity == Severity.ERROR
    stored = dict(AuditLog.objects.values_list("action", "severity"))
    assert stored == {"bot.start": "info", "bot.crash": "warning", "maintenance.backup_error": "error"}


def test_the_migration_gives_rows_written_before_it_their_actions_severity():
    backfill = importlib.import_module("deia.migrations.0002_auditlog_severity").backfill
    for action in ("bot.start", "bot.start_error", "maintenance.vacuum_error", "bot.crash", "auth.login_failed"):
        AuditLog.objects.create(actor="old", action=action)  # as before: no severity given
    backfill(django_apps, None)
    stored = dict(AuditLog.objects.values_list("action", "severity"))
    assert stored == {action: str(severity_of(action)) for action in stored}


def test_an_undeclared_audit_action_is_refused_and_nothing_is_written():
    with pytest.raises(ValueError, match=r"undeclared audit action 'bot\.exploded'"):
        audit("bot.exploded", actor="reconcile", target="a")
    assert not AuditLog.objects.exists()


def test_audit_logs_has_the_severity_created_at_desc_index():
    with connection.cursor() as cursor:
        cursor.execute("SELECT indexdef FROM pg_indexes WHERE tablename = 'audit_logs'")
        definitions = [row[0] for row in cursor.fetchall()]
    assert any("(severity, created_at DESC)" in d for d in definitions), definitions


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
