"""A runner serves only while its generation is current: refused heartbeat or stale relay, it exits."""

from __future__ import annotations

import httpx

from bots.models import Bot
from tests.support.procs import wait_for

EXIT_FENCED = 4


def test_a_runner_whose_heartbeat_is_refused_exits_at_once(make_bot, runner):
    bot = make_bot(backend="echo", model_name="echo")
    Bot.objects.filter(pk=bot.pk).update(generation=5)
    url = runner(bot, BOT_HEARTBEAT_INTERVAL="0.2", DEIA_BOT_GENERATION="5")
    assert httpx.get(f"{url}/health", timeout=5).json()["generation"] == 5
    answer = httpx.post(f"{url}/chat", headers={**url.auth, "X-Bot-Generation": "5"}, json={"message": "hi"})
    assert answer.status_code == 200, answer.text

    Bot.objects.filter(pk=bot.pk).update(generation=6)  # placed elsewhere meanwhile
    wait_for(lambda: not url.proc.running(), timeout=10, what="the fenced runner exits")
    assert url.proc.popen.returncode == EXIT_FENCED
    assert "runner fenced" in url.proc.output()


def test_a_chat_relayed_for_another_generation_is_refused_and_the_runner_exits(make_bot, runner):
    bot = make_bot(backend="echo", model_name="echo")
    url = runner(bot, BOT_HEARTBEAT_INTERVAL="0.2")
    answer = httpx.post(f"{url}/chat", headers={**url.auth, "X-Bot-Generation": "7"}, json={"message": "hi"})
    assert answer.status_code == 503 and answer.json()["error"] == "fenced"
    wait_for(lambda: not url.proc.running(), timeout=10, what="the stale runner exits")
    assert url.proc.popen.returncode == EXIT_FENCED
