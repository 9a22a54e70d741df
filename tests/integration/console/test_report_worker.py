"""The scheduled path: a real maintenance worker runs ops.tasks.weekly_report, records the run,
stores the report of last week and mails it (Django's file-based backend, in its own folder)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from celery import Celery
from django.utils import timezone

from bots.models import Backend, Bot, ChatMessage, Role
from deia.models import AuditLog
from ops.console.reports import Period
from ops.models import MaintenanceRun, Report
from tests.support.procs import wait_for

pytestmark = pytest.mark.django_db(transaction=True)


def test_the_worker_runs_the_weekly_report_job_and_mails_it(child_env, maintenance_worker, tmp_path: Path):
    last_week = Period.last_complete("weekly")
    bot = Bot.objects.create(name="Support", slug="support", backend=Backend.ECHO)
    start, _ = last_week.bounds()
    for hours in (1, 30, 50):
        ChatMessage.objects.create(bot=bot, role=Role.USER, content="q", created_at=start + timedelta(hours=hours))
    ChatMessage.objects.create(bot=bot, role=Role.USER, content="q", created_at=timezone.now())  # this week
    mail = tmp_path / "mail"
    env = {
        **child_env,
        "REPORT_EMAILS": "oncall@example.com",
        "EMAIL_BACKEND": "django.core.mail.backends.filebased.EmailBackend",
        "EMAIL_FILE_PATH": str(mail),
    }
    maintenance_worker(env, name="reports")
    sender = Celery(broker=env["REDIS_URL"], set_as_current=False)
    try:
        wait_for(lambda: sender.control.ping(timeout=0.5), timeout=60, what="the worker to answer a ping")
        sender.send_task("ops.tasks.weekly_report", queue="maintenance")
        run = wait_for(
            lambda: MaintenanceRun.objects.filter(job="weekly_report").exclude(status="running").first(),
            timeout=60,
            what="the worker's weekly_report run",
        )
    finally:
        sender.close()
    assert (run.status, run.actor) == ("ok", "celery"), run.summary
    assert run.summary.startswith(f"weekly report {last_week.label} ") and run.summary.endswith("; mailed to 1")
    report = Report.objects.get()
    assert (report.kind, report.period_start, report.period_end) == ("weekly", last_week.start, last_week.last_day)
    assert report.figures["messages"]["total"] == 3
    [row] = AuditLog.objects.filter(action="maintenance.weekly_report")
    assert row.details["report"] == report.pk and row.actor == "celery"
    [sent] = list(mail.iterdir())
    text = sent.read_text()
    assert "To: oncall@example.com" in text and f"Weekly operations report {last_week.label}" in text
    assert 'filename="deia-weekly-report-' in text
