"""Database and cache upkeep jobs, and how every run is recorded."""

from __future__ import annotations

import io
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.db import transaction
from django.utils import timezone

from bots.models import Backend, Bot, ChatMessage, Role
from deia.models import AuditLog
from ops import maintenance
from ops.maintenance import run_job
from ops.maintenance.runs import JobFailed, Outcome
from ops.models import MaintenanceRun
from tests.plugins.maintenance import metric

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def bot():
    return Bot.objects.create(name="Support", slug="support", backend=Backend.ECHO, model_name="echo")


def test_vacuum_analyzes_and_records_dead_tuples(bot):
    for i in range(50):
        ChatMessage.objects.create(bot=bot, role=Role.USER, content=str(i))
    ChatMessage.objects.all().delete()
    run = maintenance.run("vacuum", actor="test")
    run.refresh_from_db()
    assert run.status == "ok", run.summary
    assert run.details["dead_tuples_after"] <= run.details["dead_tuples_before"]
    assert metric("deia_maintenance_runs_total", task="vacuum", result="ok") == 1


def test_db_report_records_table_sizes_and_index_usage(bot):
    run = maintenance.run("db_report", actor="test")
    run.refresh_from_db()
    assert run.status == "ok"
    tables = {t["table"]: t for t in run.details["tables"]}
    assert {"chat_messages", "audit_logs", "bots_bot"} <= set(tables)
    assert tables["chat_messages"]["total_bytes"] >= tables["chat_messages"]["index_bytes"] > 0
    indexes = {i["index"]: i for i in run.details["indexes"]}
    assert indexes["chat_bot_created_idx"]["table"] == "chat_messages"
    assert "chat_bot_created_idx" in run.details["unused_indexes"] or indexes["chat_bot_created_idx"]["scans"] > 0
    # A unique index is never reported as unused: it enforces a constraint.
    assert not any(indexes[name]["unique"] for name in run.details["unused_indexes"])
    assert "unused indexes" in run.summary


def test_redis_bgsave_is_skipped_where_redis_does_not_persist(settings):
    run = maintenance.run("redis_bgsave", actor="test")  # the test Redis runs with save ''
    assert run.status == "ok" and run.summary.startswith("skipped")
    assert run.details["skipped"] is True


def test_redis_bgsave_saves_where_redis_persists(settings, redis_server):
    settings.REDIS_URL = redis_server("--save", "3600 1", "--appendonly", "no")
    run = maintenance.run("redis_bgsave", actor="test")
    run.refresh_from_db()
    assert run.status == "ok", run.summary
    assert run.summary.startswith("BGSAVE done") and run.details["status"] == "ok"


def test_purge_messages_deletes_only_expired_messages_in_batches(settings, bot):
    settings.CHAT_RETENTION_DAYS = 30
    old = timezone.now() - timedelta(days=31)
    for i in range(5):
        ChatMessage.objects.create(bot=bot, role=Role.USER, content=f"old {i}", created_at=old)
    ChatMessage.objects.create(bot=bot, role=Role.USER, content="recent")
    run = maintenance.run("purge_messages", actor="test", batch=2)
    run.refresh_from_db()
    assert run.status == "ok"
    assert run.details["deleted"] == 5 and run.details["batches"] == 3
    assert list(ChatMessage.objects.values_list("content", flat=True)) == ["recent"]
    row = AuditLog.objects.get(action="maintenance.purge_messages")
    assert row.details["deleted"] == 5


def test_purge_messages_is_skipped_without_a_retention(settings, bot):
    settings.CHAT_RETENTION_DAYS = None
    ChatMessage.objects.create(bot=bot, role=Role.USER, content="old", created_at=timezone.now() - timedelta(days=999))
    run = maintenance.run("purge_messages", actor="test")
    assert run.summary.startswith("skipped") and ChatMessage.objects.count() == 1


def test_audit_retention_deletes_rows_older_than_the_retention_and_audits_that_once(settings):
    assert settings.AUDIT_RETENTION_DAYS == 400  # the documented default
    old = timezone.now() - timedelta(days=401)
    for i in range(5):
        AuditLog.objects.create(actor="admin", action="bot.start", target=f"old {i}", created_at=old)
    AuditLog.objects.create(actor="admin", action="bot.start", target="recent", created_at=old + timedelta(days=2))
    out = io.StringIO()
    call_command("audit_retention", stdout=out)
    assert out.getvalue().startswith("audit_retention ok: deleted 5 audit rows older than 400 days")
    assert list(AuditLog.objects.exclude(action="maintenance.audit_retention").values_list("target", flat=True)) == [
        "recent"
    ]
    [row] = AuditLog.objects.filter(action="maintenance.audit_retention")
    assert row.details["deleted"] == 5 and row.actor.startswith("cli")
    # Nothing older left: the next run deletes nothing and audits nothing.
    run = maintenance.run("audit_retention", actor="celery", batch=2)
    assert run.summary == "deleted 0 audit rows older than 400 days"
    assert AuditLog.objects.filter(action="maintenance.audit_retention").count() == 1


def test_audit_retention_follows_the_setting_in_batches(settings):
    settings.AUDIT_RETENTION_DAYS = 7
    for _ in range(3):
        AuditLog.objects.create(actor="a", action="x", created_at=timezone.now() - timedelta(days=8))
    run = maintenance.run("audit_retention", actor="celery", batch=2)
    assert (run.details["deleted"], run.details["batches"], run.details["retention_days"]) == (3, 2, 7)


def test_a_failed_job_keeps_its_run_and_audit_row_although_its_own_work_rolled_back(bot):
    def job() -> Outcome:
        with transaction.atomic():
            Bot.objects.filter(pk=bot.pk).update(name="changed")
            raise RuntimeError("disk on fire")

    run = run_job("vacuum", job, actor="celery")
    run.refresh_from_db()
    bot.refresh_from_db()
    assert bot.name == "Support"  # the job's work rolled back ...
    assert run.status == "failed" and run.summary == "RuntimeError: disk on fire"  # ... its record did not
    assert "Traceback" in run.details["traceback"]
    error = AuditLog.objects.get(action="maintenance.vacuum_error")
    assert error.actor == "celery" and error.details["summary"] == "RuntimeError: disk on fire"
    assert metric("deia_maintenance_runs_total", task="vacuum", result="failed") == 1
    assert metric("deia_maintenance_last_success_timestamp_seconds", task="vacuum") is None


def test_a_warning_counts_as_a_success_and_writes_no_audit_row():
    run = run_job("db_report", lambda: Outcome("odd", {"n": 1}, "warning"), actor="test")
    assert MaintenanceRun.objects.get(pk=run.pk).status == "warning"
    assert metric("deia_maintenance_runs_total", task="db_report", result="warning") == 1
    assert metric("deia_maintenance_last_success_timestamp_seconds", task="db_report") > 0
    assert not AuditLog.objects.exists()


def test_an_expected_failure_keeps_its_details():
    def job() -> Outcome:
        raise JobFailed("mismatch", {"expected": 1, "found": 2})

    run = run_job("verify_backup", job, actor="test")
    assert (run.status, run.summary, run.details) == ("failed", "mismatch", {"expected": 1, "found": 2})
    assert AuditLog.objects.get(action="maintenance.verify_backup_error").details["found"] == 2
