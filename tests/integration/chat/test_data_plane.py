"""The chat data plane through the real web address: chats never hold the control plane,
tokens stream as they come, busy bots and busy users are refused at once, timeouts answer
504 with the question kept, and a bot answers only the control plane."""

from __future__ import annotations

import json
import threading

import httpx

from bots.models import Bot, ChatMessage, Role
from tests.plugins.observability import parse_samples
from tests.support.procs import wait_for


def chat_in_background(api, bot, message: str, results: list, **body) -> threading.Thread:
    def run() -> None:
        results.append(api.post(f"/api/bots/{bot.pk}/messages", {"message": message, **body}))

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def sse_events(lines) -> list[tuple[str, dict]]:
    events, name = [], None
    for line in lines:
        if line.startswith("event: "):
            name = line[7:]
        elif line.startswith("data: "):
            events.append((name, json.loads(line[6:])))
    return events


def test_slow_chats_never_hold_health_the_api_or_the_admin(running_bot, web, fake_ollama):
    # One web worker: with sync workers the first chat alone would freeze everything else.
    api = web(workers=1)
    bot, _ = running_bot()
    fake_ollama.latency = 4.0
    results: list = []
    threads = [chat_in_background(api, bot, f"slow {i}", results) for i in range(5)]
    wait_for(lambda: len(fake_ollama.chats()) == 5, timeout=10, what="five chats waiting on the LLM")

    assert httpx.get(f"{api.url}/health", timeout=10).status_code == 200
    assert api.get("/api/bots").status_code == 200
    assert httpx.get(f"{api.url}/admin/login/", timeout=10).status_code == 200
    assert httpx.get(f"{api.url}/health/db", timeout=10).status_code == 200

    assert results == [], "the control plane answered only after a chat finished"
    assert all(t.is_alive() for t in threads)
    for thread in threads:
        thread.join(30)
    assert sorted(r.status_code for r in results) == [200] * 5
    assert ChatMessage.objects.filter(bot=bot).count() == 10


def test_a_streamed_chat_yields_its_chunks_in_order_then_a_final_event_and_is_stored(running_bot, web, fake_ollama):
    api = web()
    bot, _ = running_bot()
    fake_ollama.chunk_delay = 0.05
    arrivals: list[str] = []

    with httpx.stream(
        "POST",
        f"{api.url}/api/bots/{bot.pk}/messages",
        json={"message": "tell me a story", "stream": True},
        headers=api.headers,
        timeout=30,
    ) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        for line in response.iter_lines():
            arrivals.append(line)

    events = sse_events(arrivals)
    chunks = [data["content"] for name, data in events if name == "chunk"]
    assert chunks == ["fake ", "reply ", "to: ", "tell ", "me ", "a ", "story"]
    name, final = events[-1]
    assert name == "done"
    assert final["reply"] == "fake reply to: tell me a story"
    assert (final["prompt_tokens"], final["completion_tokens"]) == (4, 7)
    assert final["latency_ms"] >= 0
    question = ChatMessage.objects.get(pk=final["message_id"])
    answer = ChatMessage.objects.get(pk=final["reply_id"])
    assert (question.role, question.content) == (Role.USER, "tell me a story")
    assert (answer.role, answer.content, answer.interrupted) == (Role.ASSISTANT, final["reply"], False)
    # Accept: text/event-stream asks for the same stream without the body flag.
    accept = {**api.headers, "Accept": "text/event-stream"}
    plain = httpx.post(f"{api.url}/api/bots/{bot.pk}/messages", json={"message": "hi"}, headers=accept, timeout=30)
    assert sse_events(plain.text.splitlines())[-1][0] == "done"


def test_a_client_leaving_mid_stream_stops_the_llm_and_stores_the_partial_answer(running_bot, web, fake_ollama):
    api = web()
    bot, _ = running_bot()
    fake_ollama.chunk_delay = 0.5
    message = " ".join(f"w{i}" for i in range(40))

    with httpx.stream(
        "POST",
        f"{api.url}/api/bots/{bot.pk}/messages",
        json={"message": message, "stream": True},
        headers=api.headers,
        timeout=30,
    ) as response:
        first = next(line for line in response.iter_lines() if line.startswith("data: "))
    # The stream is closed after its first chunk: the runner must close its LLM request.
    assert json.loads(first[6:])["content"] == "fake "

    wait_for(lambda: fake_ollama.disconnects == 1, timeout=15, what="the LLM request to be closed")
    answer = wait_for(
        lambda: ChatMessage.objects.filter(bot=bot, role=Role.ASSISTANT).first(), timeout=10, what="the partial answer"
    )
    assert answer.interrupted
    assert answer.error == ""
    assert answer.content.startswith("fake ")
    assert len(answer.content) < len(f"fake reply to: {message}")
    assert ChatMessage.objects.get(bot=bot, role=Role.USER).content == message


def test_the_chat_past_the_bots_limit_gets_429_at_once_and_is_counted(running_bot, web, fake_ollama):
    api = web()
    bot, url = running_bot(BOT_MAX_CONCURRENT_CHATS="2")
    fake_ollama.latency = 4.0
    results: list = []
    threads = [chat_in_background(api, bot, f"busy {i}", results) for i in range(2)]
    wait_for(lambda: len(fake_ollama.chats()) == 2, timeout=10, what="two chats in flight")

    refused = api.post(f"/api/bots/{bot.pk}/messages", {"message": "one too many"})

    assert results == [], "the refusal must not wait for a chat to end"
    assert refused.status_code == 429
    assert refused.json()["error"] == "bot_busy"
    assert int(refused.headers["Retry-After"]) >= 1
    samples = parse_samples(httpx.get(f"{url}/metrics").text)
    assert samples[("deia_chat_rejected_total", frozenset({("bot", bot.slug), ("reason", "bot_busy")}))] == 1
    assert samples[("deia_chats_in_flight", frozenset({("bot", bot.slug)}))] == 2
    assert not ChatMessage.objects.filter(content="one too many").exists()
    for thread in threads:
        thread.join(30)
    assert [r.status_code for r in results] == [200, 200]


def test_a_user_past_the_per_user_cap_gets_429_while_another_user_is_served(running_bot, web, fake_ollama):
    api = web(CHAT_MAX_CONCURRENT_PER_USER="2")
    bot, _ = running_bot()
    fake_ollama.latency = 3.0
    results: list = []
    threads = [chat_in_background(api, bot, f"mine {i}", results) for i in range(2)]
    wait_for(lambda: len(fake_ollama.chats()) == 2, timeout=10, what="two chats of one user in flight")

    refused = api.post(f"/api/bots/{bot.pk}/messages", {"message": "a third of mine"})

    assert refused.status_code == 429
    assert refused.json()["error"] == "user_limit"
    assert int(refused.headers["Retry-After"]) >= 1
    assert results == []
    other = type(api)(api.url, username="another-operator")
    fake_ollama.latency = 0.0
    assert other.post(f"/api/bots/{bot.pk}/messages", {"message": "someone else"}).status_code == 200
    for thread in threads:
        thread.join(30)
    # Slots come back when chats end: the first user may chat again.
    assert api.post(f"/api/bots/{bot.pk}/messages", {"message": "again"}).status_code == 200


def test_a_chat_past_bot_chat_timeout_answers_504_and_keeps_the_question(running_bot, web, fake_ollama):
    api = web(BOT_CHAT_TIMEOUT="1")
    bot, _ = running_bot(BOT_CHAT_TIMEOUT="1")
    fake_ollama.latency = 5.0

    response = api.post(f"/api/bots/{bot.pk}/messages", {"message": "are you there"})

    assert response.status_code == 504, response.text
    assert response.json()["error"] == "timeout"
    assert "BOT_CHAT_TIMEOUT" in response.json()["detail"]
    assert ChatMessage.objects.get(bot=bot, role=Role.USER).content == "are you there"
    failed = ChatMessage.objects.get(bot=bot, role=Role.ASSISTANT)
    assert "BOT_CHAT_TIMEOUT" in failed.error


def test_the_bots_port_refuses_a_chat_without_the_secret_and_stores_nothing(running_bot):
    bot, url = running_bot()

    for headers in ({}, {"X-Bot-Secret": "guess"}, {"X-Bot-Secret": "é".encode()}):
        response = httpx.post(f"{url}/chat", json={"message": "let me in"}, headers=headers, timeout=10)
        assert response.status_code == 401
        assert response.json()["error"] == "unauthorized"
    assert not ChatMessage.objects.filter(bot=bot).exists()
    assert httpx.get(f"{url}/health").status_code == 200  # health stays open


def test_the_runners_metrics_obey_the_metrics_acl(running_bot):
    _, url = running_bot(METRICS_ALLOWED_CIDRS="192.0.2.0/24", METRICS_TOKEN="scrape-me")

    refused = httpx.get(f"{url}/metrics")
    assert refused.status_code == 403
    assert refused.json()["error"] == "forbidden"
    assert httpx.get(f"{url}/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 403
    allowed = httpx.get(f"{url}/metrics", headers={"Authorization": "Bearer scrape-me"})
    assert allowed.status_code == 200
    assert "deia_bot_messages_total" in allowed.text


def test_the_secret_is_in_no_api_answer(running_bot, web):
    api = web()
    bot, _ = running_bot()
    secret = Bot.objects.get(pk=bot.pk).chat_secret

    assert secret
    assert secret not in api.get("/api/bots").text
    assert secret not in api.get(f"/api/bots/{bot.pk}").text
