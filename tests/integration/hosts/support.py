"""Two simulated hosts on one machine: their settings, port ranges and process tables."""

from __future__ import annotations

import os
import signal

from django.conf import settings
from django.core.management import call_command
from django.db import connection

from bots.lifecycle.process import pid_alive, process_tag
from bots.models import Bot, Status
from deia.models import AuditLog
from tests.integration.hosts.timing import FENCE, HEARTBEAT, HOST_ENV, LEASE

__all__ = ["FENCE", "HEARTBEAT", "HOST_ENV", "LEASE"]


def assert_moved_once(bot: Bot, source: str, target: str, reason: str) -> None:
    """The bot was rescheduled exactly once, audited with where from, where to and why."""
    (moved,) = AuditLog.objects.filter(action="bot.rescheduled", target=bot.slug)
    assert {k: moved.details[k] for k in ("from", "to", "reason")} == {"from": source, "to": target, "reason": reason}


def second_port_range() -> str:
    """The second host's ports: the next block of the same size as this suite's BOT_PORT_RANGE."""
    low, high = settings.BOT_PORT_RANGE
    return f"{high + 1}-{high + 1 + (high - low)}"


def runners(host: str | None = None) -> dict[int, int]:
    """{pid: bot id} of this test database's live runners (of one simulated host, or all)."""
    found = {}
    database = connection.settings_dict["NAME"]
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        tag = process_tag(int(entry)) or ""
        parts = tag.split("/")
        ours = len(parts) == 3 and parts[1] == database and parts[2].isdigit() and (host in (None, parts[0]))
        if ours and pid_alive(int(entry)) and os.getpgid(int(entry)) == int(entry):
            found[int(entry)] = int(parts[2])
    return found


def kill_host(worker, host: str, spare: int) -> None:
    """kill -9 the host's worker, its runner template and every runner (their process groups) but `spare`."""
    worker.kill()
    database = connection.settings_dict["NAME"]
    for entry in os.listdir("/proc"):
        if int(entry if entry.isdigit() else 0) == spare:
            continue
        if entry.isdigit() and (process_tag(int(entry)) or "").startswith(f"{host}/{database}/"):
            try:
                os.killpg(os.getpgid(int(entry)), signal.SIGKILL)
            except ProcessLookupError:
                pass


def all_running_on(host: str, count: int) -> bool:
    return Bot.objects.filter(status=Status.RUNNING, host=host).count() == count


def start_on(host: str, bots: list[Bot]) -> None:
    for bot in bots:
        call_command("botctl", "start", bot.slug, "--host", host)


def make_bots(count: int) -> list[Bot]:
    return [
        Bot.objects.create(name=f"Echo {i}", slug=f"echo-{i}", backend="echo", model_name="echo") for i in range(count)
    ]
