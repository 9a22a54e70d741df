"""Two simulated hosts on one machine: kill one, its bots run on the other, fenced and audited.

Host A and host B are two real bots workers with their own DEIA_HOSTNAME and port range.
Leases are short (6 s lease, 1 s heartbeat, runners fence themselves after 3 s).
"""

from __future__ import annotations

import os
import signal

import httpx

from bots.lifecycle.process import pid_alive
from bots.models import Bot, Host, Status
from deia.models import AuditLog
from tests.integration.hosts.support import (
    HOST_ENV,
    LEASE,
    all_running_on,
    assert_moved_once,
    kill_host,
    make_bots,
    runners,
    second_port_range,
    start_on,
)
from tests.support.procs import wait_for


def test_a_killed_hosts_bots_run_once_on_the_other_and_its_worker_rejoins_fenced(bot_worker, reconcile_ticker):
    host_a = bot_worker("host-a", concurrency=2, **HOST_ENV)
    bot_worker("host-b", concurrency=2, BOT_PORT_RANGE=second_port_range(), **HOST_ENV)
    reconcile_ticker(0.5)
    bots = make_bots(3)
    start_on("host-a", bots)
    wait_for(lambda: all_running_on("host-a", 3), timeout=60, what="3 bots running on host-a")
    frozen = Bot.objects.get(pk=bots[0].pk)
    # One runner is frozen rather than killed: resumed after the failover, it must not answer.
    os.kill(frozen.pid, signal.SIGSTOP)

    kill_host(host_a, "host-a", spare=frozen.pid)
    wait_for(lambda: all_running_on("host-b", 3), timeout=LEASE + 30, interval=0.2, what="3 bots on host-b")

    # Each bot moved once, audited with where from and to; the host was declared lost once.
    assert AuditLog.objects.filter(action="host.lost", target="host-a").count() == 1
    for bot in bots:
        assert_moved_once(bot, "host-a", "host-b", "host_lost")
    moved_bots = {b.pk: b for b in Bot.objects.all()}
    assert sorted(runners("host-b").values()) == sorted(moved_bots)  # exactly one runner each

    # The frozen runner, resumed, fences itself: it refuses the chat (503) and exits.
    os.kill(frozen.pid, signal.SIGCONT)
    try:
        answer = httpx.post(
            f"http://127.0.0.1:{frozen.port}/chat",
            json={"message": "are you there?"},
            headers={"X-Bot-Secret": frozen.chat_secret},
            timeout=5,
        )
        assert answer.status_code == 503 and answer.json()["error"] == "fenced", answer.text
    except httpx.TransportError:
        pass  # it exited before the request reached it: not answered either
    wait_for(lambda: not pid_alive(frozen.pid), timeout=10, what="the resumed runner exits by itself")
    assert not AuditLog.objects.filter(action="bot.fenced").exists()  # nobody had to kill it

    # host-a's worker comes back: it rejoins as alive with no bots; no bot runs twice.
    bot_worker("host-a", concurrency=2, **HOST_ENV)
    wait_for(
        lambda: AuditLog.objects.filter(action="host.rejoined", target="host-a").exists(), timeout=20, what="rejoin"
    )
    host = Host.objects.get(name="host-a")
    assert host.lost_at is None
    assert not runners("host-a")
    assert sorted(runners().values()) == sorted(moved_bots)
    for bot in Bot.objects.all():
        assert (bot.status, bot.host, bot.pid) == (Status.RUNNING, "host-b", moved_bots[bot.pk].pid)
