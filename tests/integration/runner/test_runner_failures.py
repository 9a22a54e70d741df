"""The runner when the LLM fails or is slow: 502 with a stored, counted failure; never dies."""

from __future__ import annotations

import threading

import httpx

from bots.models import ChatMessage, Role
from tests.support.procs import wait_for


def metric(url: str, name: str, bot: str) -> float:
    """The value of `name{bot="<bot>"...}` in the runner's /metrics (first match)."""
    for line in httpx.get(f"{url}/metrics").text.splitlines():
        if line.startswith(name + "{") and f'bot="{bot}"' in line:
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{name} for {bot} not in /metrics")


def assert_failure_stored_and_counted(url: str, bot, response: httpx.Response, expected: str) -> None:
    assert response.status_code == 502, response.text
    body = response.json()
    assert body["error"] == "llm_error"
    assert expected in body["detail"]
    failed = ChatMessage.objects.get(bot=bot, role=Role.ASSISTANT)
    assert failed.content == ""
    assert expected in failed.error
    assert str(failed.conversation) == body["conversation"]
    assert failed.latency_ms is not None
    assert ChatMessage.objects.filter(bot=bot, role=Role.USER).count() == 1
    assert metric(url, "deia_bot_message_errors_total", bot.slug) == 1.0
    # ... and the runner keeps serving.
    assert httpx.get(f"{url}/health").status_code == 200


def test_a_busy_llm_is_retried_and_then_answers(make_bot, runner, fake_ollama):
    bot = make_bot()
    url = runner(bot, LLM_RETRIES="2")
    fake_ollama.fail_next(1, status=503)

    response = httpx.post(f"{url}/chat", headers=url.auth, json={"message": "hi"}, timeout=10)

    assert response.status_code == 200
    assert len(fake_ollama.chats()) == 2


def test_503_until_retries_are_exhausted_is_a_stored_and_counted_502(make_bot, runner, fake_ollama):
    bot = make_bot()
    url = runner(bot, LLM_RETRIES="2")
    fake_ollama.fail_next(3, status=503)

    response = httpx.post(f"{url}/chat", headers=url.auth, json={"message": "hi"}, timeout=10)

    assert_failure_stored_and_counted(url, bot, response, "busy")
    assert len(fake_ollama.chats()) == 3  # one try and two retries, no more
    assert httpx.post(f"{url}/chat", headers=url.auth, json={"message": "again"}, timeout=10).status_code == 200


def test_an_error_line_in_the_middle_of_the_stream_is_a_502(make_bot, runner, fake_ollama):
    bot = make_bot()
    url = runner(bot)
    fake_ollama.error_mid_stream(1)

    response = httpx.post(f"{url}/chat", headers=url.auth, json={"message": "hi"}, timeout=10)

    assert_failure_stored_and_counted(url, bot, response, "fake failure")


def test_a_model_removed_after_start_is_a_502_naming_the_model(make_bot, runner, fake_ollama):
    bot = make_bot()
    url = runner(bot)
    fake_ollama.models = ["qwen2:latest"]

    response = httpx.post(f"{url}/chat", headers=url.auth, json={"message": "hi"}, timeout=10)

    assert_failure_stored_and_counted(url, bot, response, "llama3.2")


def test_a_slow_llm_answer_does_not_block_health_or_another_chat(make_bot, runner, fake_ollama):
    bot = make_bot()
    url = runner(bot, LLM_READ_TIMEOUT="3")
    fake_ollama.hang_next(1)  # the first chat's LLM call never answers
    slow: dict = {}
    thread = threading.Thread(
        target=lambda: slow.update(r=httpx.post(f"{url}/chat", headers=url.auth, json={"message": "slow"}, timeout=30))
    )
    thread.start()
    wait_for(lambda: len(fake_ollama.chats()) == 1, what="the slow chat to reach the LLM")

    health = httpx.get(f"{url}/health", timeout=2)
    fast = httpx.post(f"{url}/chat", headers=url.auth, json={"message": "fast"}, timeout=2)

    assert health.status_code == 200
    assert fast.status_code == 200
    assert thread.is_alive(), "the slow chat should still be waiting for its LLM"
    thread.join(20)
    # The hung call ends at the read timeout: a failure, stored and answered as 502.
    assert slow["r"].status_code == 502
    assert "timed out" in slow["r"].json()["detail"]


def test_metrics_start_at_zero_and_grow_after_a_chat(make_bot, runner):
    bot = make_bot()
    url = runner(bot)
    text = httpx.get(f"{url}/metrics").text
    for name in (
        "deia_bot_messages_total",
        "deia_bot_message_errors_total",
        "deia_bot_message_processing_seconds_count",
        "deia_llm_tokens_total",
    ):
        assert metric(url, name, bot.slug) == 0.0, name
    assert "deia_llm_request_seconds_count 0.0" in text

    httpx.post(f"{url}/chat", headers=url.auth, json={"message": "count me"}, timeout=10)

    text = httpx.get(f"{url}/metrics").text
    assert metric(url, "deia_bot_messages_total", bot.slug) == 1.0
    assert metric(url, "deia_bot_message_processing_seconds_count", bot.slug) == 1.0
    assert "deia_llm_request_seconds_count 1.0" in text
    assert f'deia_llm_tokens_total{{bot="{bot.slug}",kind="prompt"}} 5.0' in text
    assert f'deia_llm_tokens_total{{bot="{bot.slug}",kind="completion"}} 5.0' in text
    assert metric(url, "deia_bot_message_errors_total", bot.slug) == 0.0


def test_the_request_id_is_kept_returned_stored_and_forwarded_to_the_llm(make_bot, runner, fake_ollama):
    bot = make_bot()
    url = runner(bot, LOG_LEVEL="INFO")

    response = httpx.post(
        f"{url}/chat", json={"message": "secret words"}, headers={**url.auth, "X-Request-ID": "req-42.a"}, timeout=10
    )

    assert response.headers["X-Request-ID"] == "req-42.a"
    assert response.json()["request_id"] == "req-42.a"
    assert fake_ollama.chats()[-1].headers["x-request-id"] == "req-42.a"
    assert set(ChatMessage.objects.filter(bot=bot).values_list("request_id", flat=True)) == {"req-42.a"}
    # One JSON line for the request, with its id, and never the message content.
    import json

    lines = [json.loads(line) for line in url.proc.output().splitlines() if line.startswith("{")]
    chat_lines = [entry for entry in lines if entry.get("path") == "/chat"]
    assert len(chat_lines) == 1
    assert chat_lines[0]["request_id"] == "req-42.a"
    assert chat_lines[0]["status"] == 200
    assert "secret words" not in url.proc.output()


def test_a_request_without_an_id_gets_one_and_the_llm_sees_it(make_bot, runner, fake_ollama):
    url = runner(make_bot())

    response = httpx.post(f"{url}/chat", headers=url.auth, json={"message": "hi"}, timeout=10)

    request_id = response.headers["X-Request-ID"]
    assert len(request_id) >= 16
    assert fake_ollama.chats()[-1].headers["x-request-id"] == request_id
