"""bots.runner.chat called directly (the HTTP path is covered through real runner processes)."""

from __future__ import annotations

import asyncio
import json
import uuid

from django.db import connection
from django.test.utils import CaptureQueriesContext

from bots.llm import EchoBackend
from bots.metrics import MESSAGE_ERRORS
from bots.models import ChatMessage, Role
from bots.runner.chat import BotContext, ChatRequest, _store_question, handle_chat, parse_chat


class BrokenBackend(EchoBackend):
    name = "broken"

    async def stream(self, messages, *, request_id):
        raise KeyError("choices")
        yield  # an async generator, as the real backends are


def chat(ctx: BotContext, message: str, conversation: uuid.UUID) -> tuple[int, dict]:
    result = asyncio.run(handle_chat(ctx, ChatRequest(message, conversation, False), "rid", timeout=10))
    return result.status, result.body


def test_an_unexpected_backend_exception_is_a_stored_and_counted_502(make_bot):
    bot = make_bot(backend="echo", model_name="echo")
    ctx = BotContext(bot_id=bot.pk, slug=bot.slug, model="echo", backend=BrokenBackend())
    errors_before = MESSAGE_ERRORS.labels(bot=bot.slug)._value.get()

    status, body = chat(ctx, "hi", uuid.uuid4())

    assert status == 502
    assert body["error"] == "llm_error"
    assert "KeyError" in body["detail"]
    failed = ChatMessage.objects.get(bot=bot, role=Role.ASSISTANT)
    assert (failed.content, failed.request_id) == ("", "rid")
    assert "KeyError" in failed.error
    assert MESSAGE_ERRORS.labels(bot=bot.slug)._value.get() == errors_before + 1


def test_the_echo_backend_answers_through_the_message_path(make_bot):
    bot = make_bot(backend="echo", model_name="echo", system_prompt="")
    ctx = BotContext(bot_id=bot.pk, slug=bot.slug, model="echo", backend=EchoBackend())
    conversation = uuid.uuid4()

    status, body = chat(ctx, "ping pong", conversation)

    assert status == 200
    assert body["reply"] == "echo: ping pong"
    assert (body["prompt_tokens"], body["completion_tokens"]) == (2, 3)
    assert ChatMessage.objects.filter(conversation=conversation).count() == 2


def statements(queries: CaptureQueriesContext) -> list[str]:
    return [query["sql"].split()[0] for query in queries.captured_queries]


def test_a_new_conversation_stores_its_question_without_reading_a_history(make_bot):
    bot = make_bot(backend="echo", model_name="echo")
    started = parse_chat(b'{"message": "first"}')
    with CaptureQueriesContext(connection) as queries:
        history, _ = _store_question(bot.pk, started, "rid-1")
    assert started.new and history == []
    assert statements(queries) == ["INSERT"]

    # The next message names the conversation: its history is read back for the LLM.
    follow_up = parse_chat(json.dumps({"message": "second", "conversation": str(started.conversation)}).encode())
    with CaptureQueriesContext(connection) as queries:
        history, _ = _store_question(bot.pk, follow_up, "rid-2")
    assert not follow_up.new and history == [{"role": "user", "content": "first"}]
    assert statements(queries) == ["SELECT", "INSERT"]
