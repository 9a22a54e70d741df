"""bots.runner.client.relay_chat when the runner cannot answer."""

from __future__ import annotations

from types import SimpleNamespace

from bots.runner.client import relay_chat
from tests.support.procs import free_port


def test_relay_to_a_closed_port_is_503_bot_unavailable():
    bot = SimpleNamespace(slug="b", address=f"127.0.0.1:{free_port()}")

    status, body = relay_chat(bot, "hi", None, "r", timeout=2)

    assert status == 503
    assert body["error"] == "bot_unavailable"


def test_relay_to_a_runner_that_never_answers_is_504_bot_timeout(hanging_server):
    bot = SimpleNamespace(slug="b", address=f"127.0.0.1:{hanging_server.port}")

    status, body = relay_chat(bot, "hi", None, "r", timeout=0.3)

    assert status == 504
    assert body["error"] == "bot_timeout"


def test_relay_for_a_bot_without_a_process_is_503():
    status, body = relay_chat(SimpleNamespace(slug="b", address=""), "hi", None, "r", timeout=1)

    assert (status, body["error"]) == (503, "bot_unavailable")
