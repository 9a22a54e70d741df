"""Bad input to a maintenance or remediation command: one readable line, non-zero exit, nothing changed."""

from __future__ import annotations

import subprocess

import pytest

from bots.models import Backend, Bot, DesiredState, Status
from deia.models import AuditLog
from ops.maintenance import JOBS
from ops.models import MaintenanceRun
from tests.support.procs import PYTHON, ROOT

pytestmark = pytest.mark.django_db(transaction=True)

BAD_INPUT = [
    (["stop_least_used", "--keep", "-1"], "--keep must be a whole number, 0 or more"),
    (["stop_least_used", "--keep", "abc"], "invalid int value: 'abc'"),
    (["stop_least_used"], "the following arguments are required: --keep"),
    (["restore", "/nonexistent/db_20260101T000000Z.dump", "--yes"], "does not exist"),
    (["restore", "/nonexistent/db_20260101T000000Z.dump"], "add --yes"),
    (["restore"], "the following arguments are required: file"),
    (["verify_backup", "/nonexistent/db_20260101T000000Z.dump"], "does not exist or is not a file"),
    (["cancel_query", "abc"], "invalid int value: 'abc'"),
    (["cancel_query", "99999999999", "--yes"], "no session with pid 99999999999"),
    (["cancel_query", "-5", "--yes"], "no session with pid -5"),
    (["cancel_query", "1", "--yes", "--min-seconds", "-1"], "--min-seconds must be a number, 0 or more"),
    (["terminate_idle_connections", "--older-than-minutes", "-5"], "--older-than-minutes must be a number, 0 or more"),
    (["terminate_idle_connections", "--older-than-minutes", "nan"], "--older-than-minutes must be a number, 0 or more"),
    (["terminate_idle_connections", "--older-than-minutes", "inf"], "--older-than-minutes must be a number, 0 or more"),
    (["terminate_idle_connections", "--older-than-minutes", "soon"], "invalid float value: 'soon'"),
    (["clear_cache"], "add --yes"),
    (["clear_cache", "--y"], "unrecognized arguments: --y"),
    (["clear_cache", "--yes", "--force"], "unrecognized arguments: --force"),
    (["freeze_starts", "now"], "unrecognized arguments: now"),
    (["backup", "extra"], "unrecognized arguments: extra"),
    (["rotate_backups", "--days", "3"], "unrecognized arguments: --days 3"),
    (["install_schedules", "--rest"], "unrecognized arguments: --rest"),
    (["maintenance", "nope"], f"invalid choice: 'nope' (choose from {', '.join(map(repr, JOBS))})"),
    (["maintenance"], f"name the job to run, one of: {', '.join(JOBS)}"),
    (["maintenance", "verify_backup", "/nonexistent/db_20260101T000000Z.dump"], "does not exist or is not a file"),
    (["maintenance", "backup", "extra"], "unrecognized arguments: extra"),
    (["maintenance", "rotate_backups", "--days", "3"], "unrecognized arguments: --days 3"),
]


def state() -> tuple:
    return (
        AuditLog.objects.count(),
        MaintenanceRun.objects.count(),
        sorted(Bot.objects.values_list("slug", "desired_state")),
    )


@pytest.mark.parametrize(("args", "message"), BAD_INPUT, ids=[" ".join(a) for a, _ in BAD_INPUT])
def test_bad_input_gives_one_line_a_non_zero_exit_and_changes_nothing(args, message, child_env):
    bot = Bot.objects.create(name="Support", slug="support", backend=Backend.ECHO, desired_state=DesiredState.RUNNING)
    Bot.objects.filter(pk=bot.pk).update(status=Status.RUNNING)
    before = state()
    done = subprocess.run(
        [PYTHON, "manage.py", *args], cwd=ROOT, env=child_env, capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode != 0
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], done.stderr
    assert state() == before
