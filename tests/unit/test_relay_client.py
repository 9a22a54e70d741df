"""bots.runner.client.relay_chat when the runner cannot answer."""

from __future__ import annotations

import asyncio

from bots.runner.client import Target, relay_chat
from tests.support.procs import free_port


def relay(address: str, timeout: float):
    return asyncio.run(relay_chat(Target("b", address, "secret"), {"message": "hi"}, "r", timeout, margin=0))


def test_relay_to_a_closed_port_is_502_bad_gateway():
    answer = relay(f"127.0.0.1:{free_port()}", timeout=2)

    assert answer.status == 502
    assert answer.body["error"] == "bad_gateway"


def test_relay_to_a_runner_that_never_answers_is_504_timeout(hanging_server):
    answer = relay(f"127.0.0.1:{hanging_server.port}", timeout=0.3)

    assert answer.status == 504
    assert answer.body["error"] == "timeout"


def test_relay_for_a_bot_without_a_process_is_502():
    answer = relay("", timeout=1)

    assert (answer.status, answer.body["error"]) == (502, "bad_gateway")
