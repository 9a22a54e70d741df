"""The message path of a runner: validate, store, ask the LLM, store the answer, count it."""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from dataclasses import dataclass, field

from django.db import DatabaseError, connection

from bots.llm import LLMBackend, LLMError
from bots.metrics import LLM_SECONDS, LLM_TOKENS, MESSAGE_ERRORS, MESSAGE_SECONDS, MESSAGES
from bots.models import ChatMessage, Role

log = logging.getLogger("deia.runner")

HISTORY_LIMIT = 20  # messages of a conversation sent back to the LLM with each new one


class BadRequest(Exception):
    """The client sent something we cannot take; str(exc) is the detail."""


@dataclass
class BotContext:
    """What a runner knows about its bot; the heartbeat refreshes the system prompt."""

    bot_id: int
    slug: str
    model: str
    backend: LLMBackend
    system_prompt: str = ""
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)


def parse_chat(body: bytes) -> tuple[str, uuid.UUID]:
    """(message, conversation) from a /chat body; a new conversation when none is given."""
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadRequest(f"the body is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise BadRequest('the body must be a JSON object: {"message": "...", "conversation": "<uuid>"}')
    message = data.get("message")
    if not isinstance(message, str) or not message.strip():
        raise BadRequest("'message' must be a non-empty string")
    conversation = data.get("conversation")
    if conversation in (None, ""):
        return message, uuid.uuid4()
    try:
        return message, uuid.UUID(str(conversation))
    except ValueError:
        raise BadRequest("'conversation' must be a UUID") from None


def load_history(bot_id: int, conversation: uuid.UUID) -> list[dict[str, str]]:
    """The last HISTORY_LIMIT good messages of the conversation, oldest first."""
    rows = list(
        ChatMessage.objects.filter(
            bot_id=bot_id, conversation=conversation, role__in=(Role.USER, Role.ASSISTANT), error=""
        )
        .order_by("-created_at", "-id")
        .values_list("role", "content")[:HISTORY_LIMIT]
    )
    rows.reverse()
    return [{"role": role, "content": content} for role, content in rows]


def handle_chat(ctx: BotContext, message: str, conversation: uuid.UUID, request_id: str) -> tuple[int, dict]:
    """Answer one message: (HTTP status, JSON body). Never raises for an LLM or DB failure."""
    started = time.perf_counter()
    try:
        return _answer(ctx, message, conversation, request_id, started)
    except DatabaseError as exc:
        MESSAGE_ERRORS.labels(bot=ctx.slug).inc()
        log.error("chat storage failed", extra={"error": f"{type(exc).__name__}: {exc}"})
        return 503, {"error": "database_unavailable", "detail": "the chat could not be stored; try again"}
    finally:
        MESSAGE_SECONDS.labels(bot=ctx.slug).observe(time.perf_counter() - started)
        # Hand the pooled connection back: a runner thread must not hold one while idle.
        connection.close()


def _answer(ctx: BotContext, message: str, conversation: uuid.UUID, request_id: str, started: float):
    history = load_history(ctx.bot_id, conversation)
    ChatMessage.objects.create(
        bot_id=ctx.bot_id, conversation=conversation, role=Role.USER, content=message, request_id=request_id
    )
    # The LLM may take seconds: give the pooled connection back while we wait for it.
    connection.close()

    with ctx.lock:
        system_prompt = ctx.system_prompt
    messages = ([{"role": "system", "content": system_prompt}] if system_prompt else []) + history
    messages.append({"role": "user", "content": message})

    llm_started = time.perf_counter()
    try:
        reply = ctx.backend.chat(messages, request_id=request_id)
        error = ""
    except LLMError as exc:
        reply, error = None, str(exc) or type(exc).__name__
    except Exception as exc:  # a client bug is still a failed answer: stored and counted
        log.exception("llm backend raised unexpectedly")
        reply, error = None, f"unexpected {type(exc).__name__} in the {ctx.backend.name} backend: {exc}"
    finally:
        LLM_SECONDS.observe(time.perf_counter() - llm_started)
    latency_ms = round((time.perf_counter() - started) * 1000)

    MESSAGES.labels(bot=ctx.slug).inc()
    answer = ChatMessage(
        bot_id=ctx.bot_id,
        conversation=conversation,
        role=Role.ASSISTANT,
        content=reply.content if reply else "",
        latency_ms=latency_ms,
        prompt_tokens=reply.prompt_tokens if reply else None,
        completion_tokens=reply.completion_tokens if reply else None,
        error=error,
        request_id=request_id,
    )
    if reply is None:
        MESSAGE_ERRORS.labels(bot=ctx.slug).inc()
        log.warning("llm failed", extra={"error": error, "conversation": str(conversation)})
        answer.save()
        return 502, {
            "error": "llm_error",
            "detail": error,
            "conversation": str(conversation),
            "latency_ms": latency_ms,
            "request_id": request_id,
        }
    answer.save()
    LLM_TOKENS.labels(bot=ctx.slug, kind="prompt").inc(reply.prompt_tokens)
    LLM_TOKENS.labels(bot=ctx.slug, kind="completion").inc(reply.completion_tokens)
    return 200, {
        "reply": reply.content,
        "conversation": str(conversation),
        "latency_ms": latency_ms,
        "prompt_tokens": reply.prompt_tokens,
        "completion_tokens": reply.completion_tokens,
        "request_id": request_id,
    }
