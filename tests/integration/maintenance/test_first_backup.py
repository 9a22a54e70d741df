"""A fresh install is not red before its first scheduled backup has had its chance.

diagnose's last_backup says WARN "no backup yet, the first is scheduled at HH:MM" until
the backup schedule's first run plus the job's time limit, CRIT after; the web exports
deia_backup_first_due_timestamp_seconds meanwhile, which holds DeiaBackupTooOld
(its promtool tests are in deploy/prometheus/tests/backup_test.yml).
"""

from __future__ import annotations

import json
import subprocess
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django_celery_beat.models import PeriodicTask

from ops import maintenance, schedules
from ops.diagnose import Level, check_last_backup
from ops.maintenance.runs import TIME_LIMIT, first_run, schedule_name
from ops.models import MaintenanceRun
from tests.plugins.observability import parse_samples
from tests.support.procs import PYTHON, ROOT

pytestmark = pytest.mark.django_db

INSTALLED = datetime(2026, 3, 10, 10, 0, tzinfo=UTC)
# The backup's default schedule is daily at 02:30 UTC (ops.maintenance.registry).
FIRST = datetime(2026, 3, 11, 2, 30, tzinfo=UTC)
DEADLINE = FIRST + timedelta(seconds=TIME_LIMIT)
BACKUP = schedule_name("backup")


@pytest.fixture
def fresh_install():
    """The schedules as `manage.py setup` installs them, at INSTALLED."""
    with time_machine.travel(INSTALLED, tick=False):
        schedules.install()


def at(moment: datetime):
    return time_machine.travel(moment, tick=False)


def first_backup_due(client) -> float | None:
    response = client.get("/metrics")
    assert response.status_code == 200
    samples = parse_samples(response.content.decode())
    return samples.get(("deia_backup_first_due_timestamp_seconds", frozenset()))


def test_before_the_first_scheduled_backup_has_ended_it_is_a_warning_that_names_the_time(fresh_install):
    for moment in (INSTALLED + timedelta(minutes=1), FIRST, DEADLINE - timedelta(seconds=1)):
        with at(moment):
            check = check_last_backup()
        assert check.level == Level.WARN, (moment, check)
        assert "no backup yet, the first is scheduled at 02:30 UTC (2026-03-11)" in check.value
        assert f"critical if none by {DEADLINE:%H:%M}" in check.value


def test_once_the_first_scheduled_backup_should_have_ended_it_is_critical(fresh_install):
    for moment in (DEADLINE, DEADLINE + timedelta(days=3)):
        with at(moment):
            check = check_last_backup()
        assert check.level == Level.CRIT, (moment, check)
        assert check.value == "no good backup recorded"


def test_a_failed_first_backup_is_critical_at_once(fresh_install):
    MaintenanceRun.objects.create(job="backup", status=MaintenanceRun.Status.FAILED, summary="disk full")
    with at(INSTALLED + timedelta(hours=1)):
        assert check_last_backup().level == Level.CRIT


def test_a_first_backup_still_running_keeps_the_warning(fresh_install):
    MaintenanceRun.objects.create(job="backup", status=MaintenanceRun.Status.RUNNING, started_at=FIRST)
    with at(FIRST + timedelta(minutes=5)):
        assert check_last_backup().level == Level.WARN


def test_without_an_enabled_backup_schedule_nothing_is_coming_so_it_is_critical(fresh_install):
    PeriodicTask.objects.filter(name=BACKUP).update(enabled=False)
    with at(INSTALLED + timedelta(minutes=1)):
        assert check_last_backup().level == Level.CRIT
    PeriodicTask.objects.filter(name=BACKUP).delete()
    with at(INSTALLED + timedelta(minutes=1)):
        assert check_last_backup().level == Level.CRIT


def test_the_first_time_follows_an_operators_edit_of_the_schedule(fresh_install):
    task = PeriodicTask.objects.select_related("crontab").get(name=BACKUP)
    crontab = task.crontab
    crontab.pk = None
    crontab.hour, crontab.minute = "23", "0"
    crontab.save()
    with at(INSTALLED + timedelta(hours=1)):
        task.crontab = crontab
        task.save()
        first = first_run("backup")
        assert first is not None and first.at == datetime(2026, 3, 10, 23, 0, tzinfo=UTC)
        assert "scheduled at 23:00 UTC (2026-03-10)" in check_last_backup().value


def test_once_beat_has_sent_it_the_first_run_is_when_it_was_sent(fresh_install):
    sent = FIRST + timedelta(minutes=7)  # beat was down at 02:30 and caught up on start
    PeriodicTask.objects.filter(name=BACKUP).update(last_run_at=sent, total_run_count=1)
    first = first_run("backup")
    assert first is not None and first.at == sent
    with at(sent + timedelta(seconds=TIME_LIMIT + 1)):
        assert check_last_backup().level == Level.CRIT
    # Sent twice and still nothing recorded: no first run is pending any more.
    PeriodicTask.objects.filter(name=BACKUP).update(total_run_count=2)
    assert first_run("backup") is None


def test_manage_py_diagnose_right_after_setup_warns_instead_of_paging(child_env):
    schedules.install()  # committed: the command below is another process
    done = subprocess.run(
        [PYTHON, "manage.py", "diagnose", "--json"], env=child_env, cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    checks = {check["name"]: check for check in json.loads(done.stdout)["checks"]}
    assert checks["last_backup"]["level"] == "WARN", done.stdout
    assert "no backup yet, the first is scheduled at 02:30 UTC" in checks["last_backup"]["value"]


def test_the_web_exports_the_first_backups_deadline_until_a_backup_run_has_finished(fresh_install, client):
    with at(INSTALLED + timedelta(minutes=1)):
        assert first_backup_due(client) == DEADLINE.timestamp()
    MaintenanceRun.objects.create(job="backup", status=MaintenanceRun.Status.FAILED, summary="disk full")
    assert first_backup_due(client) is None


def test_a_good_backup_ends_the_waiting(fresh_install, settings, tmp_path):
    settings.BACKUP_DIR = tmp_path
    maintenance.run("backup", actor="test")
    assert first_run("backup") is None
    assert check_last_backup().level == Level.OK
