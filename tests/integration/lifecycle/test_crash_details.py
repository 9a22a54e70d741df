"""What on-call reads about a runner: the process line the bot-down runbook greps for, how a
crashed runner ended and what it said last, and the pool size a runner gets."""

from __future__ import annotations

import os
import signal
import subprocess

import httpx
import pytest

from bots import lifecycle
from bots.models import Bot, Status
from deia.models import AuditLog
from tests.plugins.observability import parse_samples, value
from tests.support.procs import ROOT, wait_for

pytestmark = pytest.mark.django_db(transaction=True)
RUNBOOK = ROOT / "docs" / "runbooks" / "deia-bot-down.md"


def status_of(bot: Bot) -> str:
    bot.refresh_from_db()
    return bot.status


def documented_ps_command() -> str:
    lines = [line for line in RUNBOOK.read_text().splitlines() if line.startswith("ps ") and "unbot" in line]
    assert len(lines) == 1, lines
    return lines[0]


def test_the_bot_down_runbook_s_ps_pattern_finds_a_live_runner_by_the_alert_s_port(runner):
    bot = Bot.objects.create(name="Echo", slug="echo-down", backend="echo", model_name="echo")
    other = Bot.objects.create(name="Other", slug="echo-other", backend="echo", model_name="echo")
    url, other_url = runner(bot), runner(other)
    command = documented_ps_command().replace("<port>", str(url.port))
    # As in an 80-column terminal, where ps cuts lines short unless told -ww.
    env = {**os.environ, "COLUMNS": "80"}
    found = subprocess.run(["bash", "-c", command], capture_output=True, text=True, timeout=10, env=env).stdout
    pids = [int(line.split()[0]) for line in found.splitlines()]
    assert pids == [url.proc.popen.pid], found
    assert str(other_url.port) not in found


def crash_after(sig: int, bot_worker, reconcile_ticker, slug: str) -> dict:
    """Start a bot through a real worker, send its runner `sig`, return the bot.crash details."""
    bot_worker("host-a")
    reconcile_ticker(0.5)
    bot = Bot.objects.create(name=slug, slug=slug)
    lifecycle.request_start(bot, actor="test")
    wait_for(lambda: status_of(bot) == Status.RUNNING, timeout=30, what="bot running")
    os.kill(bot.pid, sig)
    rows = AuditLog.objects.filter(target=slug, action="bot.crash")
    return wait_for(lambda: rows.first(), timeout=30, what="bot.crash").details


def test_a_crash_records_how_the_runner_ended_and_its_last_output(bot_worker, reconcile_ticker):
    details = crash_after(signal.SIGKILL, bot_worker, reconcile_ticker, "crashy-details")
    assert details["exit"] == "SIGKILL"
    lines = details["last_lines"]
    assert 1 <= len(lines) <= 5 and all(isinstance(line, str) and line for line in lines)


def test_a_runner_exiting_by_itself_records_its_exit_code(bot_worker, reconcile_ticker):
    # A runner ends cleanly on SIGTERM: an exit code, not a signal.
    details = crash_after(signal.SIGTERM, bot_worker, reconcile_ticker, "quitter")
    assert isinstance(details["exit"], int), details


def test_a_runner_gets_the_runner_pool_size_not_the_web_s(bot_worker):
    bot_worker("host-a", DB_POOL_MAX_SIZE="9", RUNNER_DB_POOL_MAX_SIZE="7")
    bot = Bot.objects.create(name="Pool", slug="pool-size")
    lifecycle.request_start(bot, actor="test")
    wait_for(lambda: status_of(bot) == Status.RUNNING, timeout=30, what="bot running")
    text = httpx.get(f"http://127.0.0.1:{bot.port}/metrics", timeout=10).text
    assert value(parse_samples(text), "deia_db_pool_max") == 7
