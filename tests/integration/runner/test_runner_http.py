"""The runner process through its port: /health, /chat, /metrics and bad input."""

from __future__ import annotations

import uuid

import httpx

from bots.models import ChatMessage, Role
from bots.runner.protocol import MAX_MESSAGE_BYTES


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

    response = httpx.post(f"{url}/chat", headers=url.auth, json={"message": "hello there"}, timeout=10)

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


def test_the_conversation_history_and_system_prompt_are_sent_to_the_llm(make_bot, runner, fake_ollama):
    bot = make_bot(system_prompt="Answer in French.")
    url = runner(bot)
    first = httpx.post(f"{url}/chat", headers=url.auth, json={"message": "one"}, timeout=10).json()

    second = httpx.post(
        f"{url}/chat", headers=url.auth, json={"message": "two", "conversation": first["conversation"]}, timeout=10
    )

    assert second.status_code == 200
    assert second.json()["conversation"] == first["conversation"]
    sent = fake_ollama.chats()[-1].body
    assert sent["model"] == "llama3.2"
    assert sent["messages"] == [
        {"role": "system", "content": "Answer in French."},
        {"role": "user", "content": "one"},
        {"role": "assistant", "content": "fake reply to: one"},
        {"role": "user", "content": "two"},
    ]


def test_only_the_last_twenty_messages_of_the_conversation_are_sent(make_bot, runner, fake_ollama):
    bot = make_bot(system_prompt="")
    conversation = uuid.uuid4()
    for i in range(25):
        role = Role.USER if i % 2 == 0 else Role.ASSISTANT
        ChatMessage.objects.create(bot=bot, conversation=conversation, role=role, content=f"m{i}")
    url = runner(bot)

    response = httpx.post(
        f"{url}/chat", headers=url.auth, json={"message": "new", "conversation": str(conversation)}, timeout=10
    )

    assert response.status_code == 200
    sent = fake_ollama.chats()[-1].body["messages"]
    assert [m["content"] for m in sent] == [f"m{i}" for i in range(5, 25)] + ["new"]


def test_a_body_over_32_kib_is_refused_with_413_and_nothing_is_stored(make_bot, runner):
    bot = make_bot()
    url = runner(bot)

    response = httpx.post(f"{url}/chat", headers=url.auth, json={"message": "x" * (33 * 1024)}, timeout=10)

    assert response.status_code == 413
    assert response.json()["error"] == "payload_too_large"
    assert not ChatMessage.objects.filter(bot=bot).exists()


def test_a_message_at_the_limit_is_answered_though_json_escaping_makes_its_body_longer(make_bot, runner):
    bot = make_bot()
    url = runner(bot)
    message = '"' * MAX_MESSAGE_BYTES  # the API accepts it; its JSON body is twice as long

    response = httpx.post(f"{url}/chat", headers=url.auth, json={"message": message}, timeout=10)
    too_long = httpx.post(f"{url}/chat", headers=url.auth, json={"message": "x" * (7 * MAX_MESSAGE_BYTES)}, timeout=10)

    assert response.status_code == 200, response.text
    assert ChatMessage.objects.get(bot=bot, role=Role.USER).content == message
    assert too_long.status_code == 413


def test_malformed_json_an_empty_message_or_a_bad_conversation_is_a_400(make_bot, runner):
    bot = make_bot()
    url = runner(bot)
    bad_bodies = [
        b"{not json",
        b'"just a string"',
        b"{}",
        b'{"message": ""}',
        b'{"message": "   "}',
        b'{"message": 42}',
        b'{"message": "hi", "conversation": "not-a-uuid"}',
    ]
    for raw in bad_bodies:
        response = httpx.post(f"{url}/chat", content=raw, headers={**url.auth, "Content-Type": "application/json"})
        assert response.status_code == 400, raw
        assert response.json()["error"] == "bad_request"
        assert response.json()["detail"]
    assert not ChatMessage.objects.filter(bot=bot).exists()


def test_unknown_routes_and_methods_answer_json_errors(make_bot, runner):
    url = runner(make_bot())

    assert httpx.get(f"{url}/nope").status_code == 404
    assert httpx.get(f"{url}/chat").status_code == 405
    assert httpx.post(f"{url}/health").json()["error"] == "method_not_allowed"
