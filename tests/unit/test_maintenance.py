"""Pure logic of the maintenance area: names, levels, schedules, the details renderer."""

from __future__ import annotations

from django.core.management import get_commands, load_command_class

from deia.celery import app
from ops import tasks
from ops.admin import render_details
from ops.diagnose import CHECKS, Check, Level, graded, overall, summary
from ops.maintenance import JOBS
from ops.maintenance.backup import BACKUP_NAME
from ops.maintenance.recording import MAINTENANCE_LAST_SUCCESS, MAINTENANCE_RUNS
from ops.schedules import SCHEDULES
from tests.support.procs import ROOT


def test_only_backup_names_match_the_backup_pattern():
    for name in ("db_20260101T020000Z.dump", "db_20260101T020000Z-2.dump", "db_20260101T020000Z.sqlite3"):
        assert BACKUP_NAME.match(name), name
    for name in (
        "db_20260101T020000Z.dump.json",
        ".db_20260101T020000Z.dump.partial",
        "db_latest.dump",
        "db_20260101.dump",
        "db_20260101T020000Z.sql.gz",
        "xdb_20260101T020000Z.dump",
    ):
        assert not BACKUP_NAME.match(name), name


def test_every_registered_job_has_a_task_a_schedule_metric_labels_and_commands():
    commands = get_commands()
    schedules = {s.task: s for s in SCHEDULES}
    runs_labels = set(MAINTENANCE_RUNS.initial)
    for name, job in JOBS.items():
        assert job.name == name and callable(job.func), name
        task = app.tasks[f"ops.tasks.{name}"]  # the stable name stored schedules call
        assert tasks.TASKS[name].name == task.name and task.run.__doc__ == job.description
        assert (task.queue, task.time_limit, task.soft_time_limit) == (
            "maintenance",
            job.time_limit,
            job.time_limit - 60,
        )
        schedule = schedules.pop(f"ops.tasks.{name}")
        assert (schedule.name, schedule.queue, schedule.cron) == (f"maintenance: {name}", "maintenance", job.cron)
        assert {(result, name) for result in ("ok", "warning", "failed")} <= runs_labels, name
        assert (name,) in MAINTENANCE_LAST_SUCCESS.initial
        assert commands[name] == "ops", name  # `manage.py <job>`, as documented
        assert load_command_class("ops", name).job is job
    assert set(schedules) == {"bots.tasks.reconcile_all", "ops.console.sample_figures"}
    assert len(MAINTENANCE_RUNS.initial) == 3 * len(JOBS) and commands["maintenance"] == "ops"


def test_every_registered_job_is_documented_with_its_schedule_and_command():
    doc = (ROOT / "docs/MAINTENANCE.md").read_text()
    readme = (ROOT / "README.md").read_text()
    for name, job in JOBS.items():
        assert f"| maintenance: {name} " in doc and f"`{job.task}`" in doc, name
        assert f"| `{name}" in doc and f"`{name}" in readme, name


def test_the_retention_defaults_are_documented():
    from django.conf import settings

    from tests.support.procs import ROOT

    assert settings.CHAT_RETENTION_DAYS is None and settings.AUDIT_RETENTION_DAYS == 400
    for doc in ("README.md", "docs/MAINTENANCE.md"):
        rows = {
            line.split("|")[1].strip(" `"): line for line in (ROOT / doc).read_text().splitlines() if line[:2] == "| "
        }
        assert "unset: chat messages are kept for ever" in rows["CHAT_RETENTION_DAYS"], doc
        assert "400" in rows["AUDIT_RETENTION_DAYS"], doc


def test_levels_are_graded_against_both_thresholds():
    assert graded("disk", 50, 20, 5, "", "", below=True).level == Level.OK
    assert graded("disk", 19, 20, 5, "", "", below=True).level == Level.WARN
    assert graded("disk", 4, 20, 5, "", "", below=True).level == Level.CRIT
    assert graded("conn", 81, 80, 95, "", "", below=False).level == Level.WARN
    assert graded("conn", 96, 80, 95, "", "", below=False).level == Level.CRIT


def test_the_overall_level_is_the_worst_and_the_line_carries_the_next_step():
    checks = [Check("a", Level.OK, "1"), Check("b", Level.WARN, "2", "t", "do this")]
    assert overall(checks) == Level.WARN
    assert summary(checks) == "diagnose: WARN (1 OK, 1 WARN, 0 CRIT)"
    assert checks[1].line().endswith("2 (threshold: t) -> next: do this")
    assert "next:" not in Check("a", Level.OK, "1", "t", "ignored").line()
    assert {"database", "web", "last_backup", "disk_backups"} <= set(CHECKS)


def test_run_details_render_records_as_tables_and_escape_everything():
    html = render_details({"tables": [{"table": "<script>", "total_bytes": 1}], "note": "<b>"})
    assert "<h3>tables</h3>" in html and "<td>&lt;script&gt;</td>" in html
    assert "&lt;b&gt;" in html and "<script>" not in html
