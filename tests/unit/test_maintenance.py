"""Pure logic of the maintenance area: names, levels, schedules, the details renderer."""

from __future__ import annotations

from ops import maintenance, tasks
from ops.admin import render_details
from ops.diagnose import CHECKS, Check, Level, graded, overall, summary
from ops.maintenance.backup import BACKUP_NAME
from ops.metrics import MAINTENANCE_TASKS
from ops.schedules import SCHEDULES


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


def test_every_job_has_a_function_a_task_and_a_schedule():
    assert set(maintenance.JOBS) == set(MAINTENANCE_TASKS)
    scheduled = {s.task for s in SCHEDULES}
    for job in MAINTENANCE_TASKS:
        assert callable(getattr(tasks, job)), job
        assert f"ops.tasks.{job}" in scheduled, job
    assert "bots.tasks.reconcile_all" in scheduled
    assert all(s.queue == "maintenance" for s in SCHEDULES if s.task.startswith("ops.tasks."))


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
