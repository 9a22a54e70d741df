"""The runner process through its port: /health, /chat, /metrics and bad input."""

from __future__ import annotations

import uuid

import httpx

from bots.models import ChatMessage, Role


def test_health_reports_the_bot_model_backend_pid_and_uptime(make_bot, runner):
    bot = make_bot()
    url = runner(bot)

    response = httpx.get(f"{url}/health")

    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert body["bot_id"] == bot.pk
    assert body["bot"] == bot.slug
    assert body["model"] == "llama3.2"
    assert body["backend"] == "ollama"
    assert body["pid"] == url.proc.pid
    assert body["uptime_seconds"] >= 0


def test_a_chat_stores_both_messages_with_latency_and_tokens_and_returns_the_reply(make_bot, runner):
    bot = make_bot()
    url = runner(bot)

    response = httpx.post(f"{url}/chat", json={"message": "hello there"}, timeout=10)

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["reply"] == "fake reply to: hello there"
    assert body["latency_ms"] >= 0
    conversation = uuid.UUID(body["conversation"])
    rows = list(ChatMessage.objects.filter(bot=bot).order_by("created_at", "id"))
    assert [(r.role, r.content) for r in rows] == [
        (Role.USER, "hello there"),
        (Role.ASSISTANT, "fake reply to: hello there"),
    ]
    assert {r.conversation for r in rows} == {conversation}
    reply = rows[1]
    assert reply.latency_ms == body["latency_ms"]
    # The fake counts words: system prompt (3) + message (2); reply has 5 words.
    assert (reply.prompt_tokens, reply.completion_tokens) == (5, 5)
    assert reply.error == ""
    assert reply.request_id == body["request_id"] == response.headers["X-Request-ID"]
