"""Bad input to a maintenance or remediation command: one readable line, non-zero exit, nothing changed."""

from __future__ import annotations

import subprocess

import pytest

from bots.models import Backend, Bot, DesiredState, Status
from ops.models import AuditLog, MaintenanceRun
from tests.support.procs import PYTHON, ROOT

pytestmark = pytest.mark.django_db(transaction=True)

BAD_INPUT = [
    (["stop_least_used", "--keep", "-1"], "--keep must be a whole number, 0 or more"),
    (["stop_least_used", "--keep", "abc"], "invalid int value: 'abc'"),
    (["stop_least_used"], "the following arguments are required: --keep"),
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
