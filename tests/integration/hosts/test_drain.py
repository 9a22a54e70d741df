"""Draining a host with chats going on: every bot moves to the other host, no chat fails."""

from __future__ import annotations

import asyncio
import threading

from django.core.management import call_command
from django.db import connection

from bots.models import Bot, Host, Status
from bots.runner.client import Target, relay_chat
from deia.models import AuditLog
from tests.integration.hosts.support import (
    HOST_ENV,
    all_running_on,
    assert_moved_once,
    runners,
    second_port_range,
    start_on,
)
from tests.support.procs import wait_for


class Chatter(threading.Thread):
    """Chats with every bot in turn through the web's relay, reading the bot's target afresh each time."""

    def __init__(self, bot_ids: list[int]) -> None:
        super().__init__(daemon=True)
        self.bot_ids = bot_ids
        self.statuses: list[tuple[str, int, str]] = []
        self.stopped = threading.Event()

    def run(self) -> None:
        try:
            while not self.stopped.is_set():
                for bot in Bot.objects.filter(pk__in=self.bot_ids):
                    target = Target(bot.slug, bot.address, bot.chat_secret, bot.generation)
                    answer = asyncio.run(relay_chat(target, {"message": "still there?"}, "drain-test", timeout=10))
                    self.statuses.append((bot.slug, answer.status, str(answer.body.get("detail", ""))))
        finally:
            connection.close()


def test_draining_moves_every_bot_with_no_chat_in_flight_failing(bot_worker, reconcile_ticker, fake_ollama):
    fake_ollama.latency = 0.3  # a slow LLM: chats are in flight when each bot moves
    bot_worker("host-a", concurrency=2, **HOST_ENV)
    bot_worker("host-b", concurrency=2, BOT_PORT_RANGE=second_port_range(), **HOST_ENV)
    reconcile_ticker(0.5)
    bots = [Bot.objects.create(name=f"Slow {i}", slug=f"slow-{i}") for i in range(3)]
    start_on("host-a", bots)
    wait_for(lambda: all_running_on("host-a", 3), timeout=60, what="3 bots running on host-a")
    chatter = Chatter([b.pk for b in bots])
    chatter.start()
    wait_for(lambda: len(chatter.statuses) >= 3, timeout=20, what="chats answered before the drain")

    call_command("host", "drain", "host-a")
    wait_for(
        lambda: AuditLog.objects.filter(action="host.drained", target="host-a").exists(),
        timeout=60,
        interval=0.2,
        what="host-a drained",
    )
    answered_before_stop = len(chatter.statuses)
    wait_for(lambda: len(chatter.statuses) >= answered_before_stop + 3, timeout=20, what="chats after the drain")
    chatter.stopped.set()
    chatter.join(20)

    failed = [s for s in chatter.statuses if s[1] != 200]
    assert not failed, failed
    assert all_running_on("host-b", 3)
    assert not Bot.objects.exclude(handover={}).exists()
    for bot in bots:
        assert_moved_once(bot, "host-a", "host-b", "drain")
    assert not runners("host-a")
    assert sorted(runners("host-b").values()) == sorted(b.pk for b in bots)
    assert Host.objects.get(name="host-a").draining
    assert AuditLog.objects.filter(action="host.drain_requested", target="host-a").count() == 1

    # Undrained, it takes new bots again: a new bot goes to the least loaded host, host-a.
    call_command("host", "undrain", "host-a")
    extra = Bot.objects.create(name="Fresh", slug="fresh", backend="echo", model_name="echo")
    call_command("botctl", "start", extra.slug)
    wait_for(lambda: Bot.objects.get(pk=extra.pk).status == Status.RUNNING, timeout=30, what="fresh bot running")
    assert Bot.objects.get(pk=extra.pk).host == "host-a"
