"""Weekly and monthly operations reports: content on a known week, the job, replacing, mail, bad input."""

from __future__ import annotations

import io
import subprocess

import pytest
from django.core.management import call_command

from deia.models import AuditLog
from ops import maintenance
from ops.console.reports import gather, make_report, render_markdown
from ops.models import MaintenanceRun, Report
from tests.plugins.console import WEEK
from tests.support.procs import PYTHON, ROOT, free_port

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_week_with_known_data_gives_known_figures(known_week):
    figures = gather(WEEK)
    assert (figures["label"], figures["period"]) == (
        "2026-W47",
        {"start": "2026-11-16", "end": "2026-11-22", "days": 7},
    )
    messages = figures["messages"]
    assert [d["messages"] for d in messages["per_day"]] == [3, 0, 2, 0, 1, 0, 0]
    assert (messages["total"], messages["answers"], messages["errors"]) == (6, 6, 1)
    assert messages["per_day_average"] == 0.9
    support, sales = messages["per_bot"]
    assert (support["bot"], support["messages"], support["errors"], support["error_ratio"]) == ("support", 5, 1, 0.2)
    assert (support["p95_ms"], sales["p95_ms"]) == (400.0, 900.0)
    assert [b["bot"] for b in messages["top_erroring"]] == ["support"]
    assert [b["bot"] for b in messages["slowest"]] == ["sales", "support"]
    lifecycle = figures["lifecycle"]
    assert (lifecycle["crashes"], lifecycle["restarts"], lifecycle["start_errors"]) == (2, 1, 1)
    assert lifecycle["by_bot"] == [
        {"bot": "support", "crashes": 2, "restarts": 1, "start_errors": 0},
        {"bot": "sales", "crashes": 0, "restarts": 0, "start_errors": 1},
    ]
    assert [(r["status"], r["size"]) for r in figures["backups"]] == [("ok", 1000), ("failed", None), ("ok", 1500)]
    assert [r["status"] for r in figures["restore_checks"]] == ["ok"]
    storage = figures["storage"]
    assert storage["database_bytes"] == {"start": 10 * 1048576, "end": 12 * 1048576, "change": 2 * 1048576}
    assert storage["backup_bytes"] == {"start": 1000, "end": 1500, "change": 500}
    assert storage["backup_disk_free_bytes"] > 0  # BACKUP_DIR's file system, made or not
    assert sorted(r["job"] for r in figures["maintenance_failures"]) == ["backup", "vacuum"]
    service = figures["service"]
    assert service["source"] == "the application's own samples"
    assert (service["availability"], service["api_error_ratio"]) == (0.99, 0.002)
    assert service["api_p95_seconds"] == pytest.approx(0.0975)  # interpolated in the 50-100 ms bucket
    assert service["message_p95_seconds"] is None  # no sample of it: no data, not 0


def test_the_markdown_says_it_in_words(known_week):
    text = render_markdown(gather(WEEK))
    assert text.startswith("# Weekly operations report 2026-W47\n")
    assert "Period: 2026-11-16 to 2026-11-22 (UTC, 7 days)." in text
    assert "6 messages (0.9 a day), 6 answers, 1 failed answers (16.67 %)." in text
    assert "| support | 5 | 0.7 | 5 | 1 | 20.00 % | 400 ms |" in text
    assert "| 2026-11-18 | 2 |" in text
    assert "2 crashes, 1 automatic restarts, 1 start errors." in text
    assert "## Backups\n\n2 of 3 succeeded." in text
    assert "## Restore checks\n\n1 of 1 succeeded." in text
    assert "| Database | 10.0 MiB | 12.0 MiB | 2.0 MiB |" in text
    assert "| vacuum | 2026-11-16 05:00 | vacuum failed |" in text
    assert "| Availability | 99.000 % | 99.5 % | MISSED |" in text
    assert "| API p95 latency | 98 ms | 200 ms | met |" in text
    assert "| API error rate | 0.20 % | 0.5 % | met |" in text
    assert "| Message p95 latency | no data | 500 ms | no data |" in text


def test_the_job_records_a_run_a_report_and_one_audit_row_and_replaces_the_periods_report(known_week):
    first = maintenance.run("weekly_report", actor="test", period=WEEK)
    first.refresh_from_db()
    assert first.status == "ok", first.summary
    assert first.summary.startswith("weekly report 2026-W47 (2026-11-16 to 2026-11-22) made: 6 messages, 2 crashes")
    report = Report.objects.get()
    assert (report.kind, str(report.period_start), str(report.period_end)) == ("weekly", "2026-11-16", "2026-11-22")
    assert report.body == render_markdown(report.figures) and report.figures["messages"]["total"] == 6
    [row] = AuditLog.objects.filter(action__startswith="maintenance.")
    assert (row.action, row.actor, row.details["report"], row.details["replaced"]) == (
        "maintenance.weekly_report",
        "test",
        report.pk,
        False,
    )

    again = maintenance.run("weekly_report", actor="test", period=WEEK)
    assert "replaced" in again.summary
    assert Report.objects.get().pk == report.pk  # the same report, at the same address
    rows = AuditLog.objects.filter(action="maintenance.weekly_report").order_by("id")
    assert [r.details["replaced"] for r in rows] == [False, True]


def test_manage_py_names_a_period_and_prints_one_line(known_week):
    out = io.StringIO()
    call_command("weekly_report", "2026-W47", stdout=out)
    assert out.getvalue().startswith("weekly_report ok: weekly report 2026-W47 (2026-11-16 to 2026-11-22) made")
    call_command("maintenance", "monthly_report", "2026-11", stdout=out)
    monthly = Report.objects.get(kind="monthly")
    assert (str(monthly.period_start), str(monthly.period_end)) == ("2026-11-01", "2026-11-30")
    assert monthly.figures["messages"]["total"] == 8  # the whole month: the weeks either side too


def test_the_report_is_mailed_to_report_emails(known_week, settings, mailoutbox):
    settings.REPORT_EMAILS = ["oncall@example.com", "lead@example.com"]
    run = maintenance.run("weekly_report", actor="test", period=WEEK)
    assert run.status == "ok" and run.summary.endswith("; mailed to 2")
    [mail] = mailoutbox
    report = Report.objects.get()
    assert mail.to == ["oncall@example.com", "lead@example.com"]
    assert mail.subject == "[DEIA] Weekly operations report 2026-W47"
    assert mail.body == report.body
    assert mail.attachments == [("deia-weekly-report-2026-11-16.md", report.body, "text/markdown")]


def test_nothing_is_mailed_without_report_emails(known_week, settings, mailoutbox):
    settings.REPORT_EMAILS = []
    run = maintenance.run("weekly_report", actor="test", period=WEEK)
    assert run.status == "ok" and "mailed" not in run.summary and mailoutbox == []
    assert run.details["mailed_to"] == 0


def test_a_mail_that_cannot_be_sent_fails_the_run_and_keeps_the_report(known_week, settings):
    settings.REPORT_EMAILS = ["oncall@example.com"]
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT, settings.EMAIL_TIMEOUT = "127.0.0.1", free_port(), 5  # nothing listens
    run = maintenance.run("weekly_report", actor="test", period=WEEK)
    run.refresh_from_db()
    assert run.status == "failed" and "mailing it failed: ConnectionRefusedError" in run.summary
    assert Report.objects.count() == 1
    [row] = AuditLog.objects.filter(action__startswith="maintenance.")
    assert row.action == "maintenance.weekly_report_error" and row.details["report"] == Report.objects.get().pk


def test_a_prometheus_that_does_not_answer_leaves_the_service_figures_without_data(known_week, settings):
    settings.PROMETHEUS_URL = f"http://127.0.0.1:{free_port()}"
    service = gather(WEEK)["service"]
    assert service["source"].startswith("Prometheus (PROMETHEUS_URL), which did not answer (Prometheus at http://")
    assert service["availability"] is None and service["api_p95_seconds"] is None


def test_an_unknown_kind_is_refused_and_changes_nothing(known_week):
    with pytest.raises(ValueError, match="unknown report kind 'yearly'"):
        make_report("yearly")
    with pytest.raises(ValueError, match="a monthly report needs a monthly period, not 2026-W47"):
        make_report("monthly", WEEK)
    assert Report.objects.count() == 0


BAD_INPUT = [
    (["weekly_report", "2026-W60"], "invalid week '2026-W60': expected YYYY-Www, e.g. 2026-W47"),
    (["weekly_report", "2099-W01"], "2099-W01 is not over yet: it ends 2099-01-04"),
    (["maintenance", "monthly_report", "November"], "invalid month 'November': expected YYYY-MM"),
    (["monthly_report", "2099-01"], "2099-01 is not over yet"),
    (["weekly_report", "2026-W47", "extra"], "unrecognized arguments: extra"),
    (["maintenance", "yearly_report"], "invalid choice: 'yearly_report'"),
]


@pytest.mark.parametrize(("args", "message"), BAD_INPUT, ids=[" ".join(a) for a, _ in BAD_INPUT])
def test_bad_input_on_the_command_line_is_one_line_and_changes_nothing(args, message, child_env):
    before = (Report.objects.count(), MaintenanceRun.objects.count(), AuditLog.objects.count())
    done = subprocess.run(
        [PYTHON, "manage.py", *args], cwd=ROOT, env=child_env, capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode != 0
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], done.stderr
    assert (Report.objects.count(), MaintenanceRun.objects.count(), AuditLog.objects.count()) == before
