"""botctl: the operator CLI and `make run`'s shutdown-host."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from django.db import connection

from bots import lifecycle
from bots.lifecycle.process import TEMPLATE_TITLE, pid_alive
from bots.models import Bot, DesiredState, Status
from deia.models import AuditLog
from tests.support.procs import PYTHON, ROOT, wait_for


@pytest.mark.django_db
def test_botctl_start_and_stop_are_audited_as_the_unix_user(capsys):
    bot = Bot.objects.create(name="Support", slug="support")
    call_command("botctl", "start", "support")
    call_command("botctl", "stop", str(bot.pk))
    rows = list(AuditLog.objects.order_by("id").values_list("action", "actor"))
    assert [a for a, _ in rows] == ["bot.start", "bot.stop"]
    assert all(actor.startswith("cli:") for _, actor in rows)
    assert "stop requested for support" in capsys.readouterr().out


@pytest.mark.django_db
def test_botctl_refuses_an_unknown_bot_and_a_refused_start_with_one_line(settings):
    with pytest.raises(CommandError, match="no bot with id or slug 'nope'"):
        call_command("botctl", "start", "nope")
    settings.MAX_BOTS = 0
    Bot.objects.create(name="Support", slug="support")
    with pytest.raises(CommandError, match="MAX_BOTS=0"):
        call_command("botctl", "start", "support")


def test_shutdown_host_stops_this_hosts_bots_and_keeps_their_desired_state(bot_worker):
    worker = bot_worker("host-a")
    bot = Bot.objects.create(name="Support", slug="support")
    lifecycle.request_start(bot, actor="test")
    wait_for(lambda: Bot.objects.get(pk=bot.pk).status == Status.RUNNING, timeout=30, what="running")
    bot.refresh_from_db()
    wait_for(lambda: template_pids("host-a"), timeout=30, what="host-a's runner template")
    worker.proc.stop(grace=10)  # as `make run` does: honcho stops the worker, then the trap runs this
    result = subprocess.run(
        [PYTHON, "manage.py", "botctl", "shutdown-host"],
        env={**worker.env},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "stopped 1 bot process(es) on host-a" in result.stdout
    assert not pid_alive(bot.pid)
    bot.refresh_from_db()
    assert (bot.status, bot.desired_state) == (Status.STOPPED, DesiredState.RUNNING)
    assert AuditLog.objects.get(action="bot.stopped").actor == "shutdown"
    # Its runner template goes too: leaving `make run` leaves no process behind.
    wait_for(lambda: template_pids("host-a") == [], timeout=10, what="host-a's runner template to end")


def template_pids(host: str) -> list[int]:
    """Live runner templates of `host` for this test database (their process title names both)."""
    prefix = f"{TEMPLATE_TITLE} {host}/{connection.settings_dict['NAME']}/"
    found = []
    for entry in Path("/proc").iterdir():
        try:
            title = (entry / "cmdline").read_bytes().split(b"\0", 1)[0].decode(errors="replace")
        except (OSError, ValueError):
            continue
        if entry.name.isdigit() and title.startswith(prefix) and pid_alive(int(entry.name)):
            found.append(int(entry.name))
    return found
