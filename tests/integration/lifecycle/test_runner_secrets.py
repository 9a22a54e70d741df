"""Runners get only the environment they read, and what the lifecycle writes is owner-only."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from bots import lifecycle
from bots.lifecycle.process import log_path
from bots.models import Bot, Status
from tests.support.procs import wait_for

pytestmark = pytest.mark.django_db(transaction=True)

AWS_SECRET = "aws-secret-do-not-leak"


@pytest.fixture
def permissive_umask():
    """The worker starts as a careless shell would start it: umask 022."""
    previous = os.umask(0o022)
    yield
    os.umask(previous)


def environ_of(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes()
    return dict(item.decode().split("=", 1) for item in raw.split(b"\0") if b"=" in item)


def umask_of(pid: int) -> int:
    line = next(x for x in Path(f"/proc/{pid}/status").read_text().splitlines() if x.startswith("Umask:"))
    return int(line.split()[1], 8)


def test_a_runner_gets_only_what_it_reads_and_writes_owner_only_files(permissive_umask, bot_worker, settings, tmp_path):
    worker = bot_worker(
        "host-a",
        AWS_SECRET_ACCESS_KEY=AWS_SECRET,
        DEIA_ADMIN_PASSWORD="admin-password-do-not-leak",
        METRICS_TOKEN="metrics-token-do-not-leak",
        # An exec'd runner's own environment; a forked one has its template's (test_runner_template.py).
        BOT_RUNNER_TEMPLATE="false",
    )
    assert "REDIS_URL" in worker.env  # the worker has it; its runners must not
    bot = Bot.objects.create(name="Support", slug="support")
    lifecycle.request_start(bot, actor="test")
    wait_for(lambda: Bot.objects.get(pk=bot.pk).status == Status.RUNNING, timeout=30, what="support running")
    bot.refresh_from_db()

    env = environ_of(bot.pid)
    for leaked in ("AWS_SECRET_ACCESS_KEY", "REDIS_URL", "DEIA_ADMIN_PASSWORD", "METRICS_TOKEN", "CELERY_BROKER_URL"):
        assert leaked not in env, leaked
    assert AWS_SECRET.encode() not in Path(f"/proc/{bot.pid}/environ").read_bytes()
    assert env["DATABASE_URL"] == worker.env["DATABASE_URL"]
    assert env["DEIA_RUNNER_TAG"].endswith(f"/{bot.pk}")
    assert env["DEIA_HOSTNAME"] == "host-a" and env["BOT_HEARTBEAT_INTERVAL"] == "0.5"

    assert umask_of(worker.proc.pid) == umask_of(bot.pid) == 0o077
    settings.LOG_DIR = tmp_path / "log"
    log = log_path(bot.slug)
    assert stat.S_IMODE(log.stat().st_mode) == 0o600
    assert stat.S_IMODE(log.parent.stat().st_mode) == 0o700
