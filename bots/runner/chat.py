"""The message path of a runner: validate, store, ask the LLM (streamed), store the answer, count it.

Storage runs on a small thread pool (the ORM is synchronous); the LLM call runs on the
event loop, so a runner holds no thread while its bot thinks. Each storage step hands its
pooled connection back at once: a runner holds a connection only while it writes.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
import uuid
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import aclosing
from dataclasses import dataclass, field
from typing import Any

from django.db import DatabaseError, connection

from bots.llm import LLMBackend, LLMError, LLMReply
from bots.metrics import FIRST_TOKEN_SECONDS, LLM_SECONDS, LLM_TOKENS, MESSAGE_ERRORS, MESSAGE_SECONDS, MESSAGES
from bots.models import ChatMessage, Role

log = logging.getLogger("deia.runner")

HISTORY_LIMIT = 20  # messages of a conversation sent back to the LLM with each new one
DB_THREADS = 4  # storage steps at once; also the most connections a runner holds

PieceSink = Callable[[str], Awaitable[None]]


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


@dataclass(frozen=True)
class ChatRequest:
    message: str
    conversation: uuid.UUID
    stream: bool
    new: bool = False  # this request starts the conversation: it has no history to read


@dataclass
class ChatResult:
    """(HTTP status, JSON body) of a plain chat; the final or error event of a streamed one."""

    status: int
    body: dict[str, Any]

    @property
    def event(self) -> str:
        return "done" if self.status == 200 else "error"


_executor = ThreadPoolExecutor(max_workers=DB_THREADS, thread_name_prefix="db")


async def in_db(fn: Callable[..., Any], *args: Any) -> Any:
    """Run a storage step on the pool and give its connection back."""

    def run() -> Any:
        try:
            return fn(*args)
        finally:
            connection.close()

    return await asyncio.get_running_loop().run_in_executor(_executor, run)


def parse_chat(body: bytes) -> ChatRequest:
    """The /chat body; a new conversation when none is given."""
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadRequest(f"the body is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise BadRequest('the body must be a JSON object: {"message": "...", "conversation": "<uuid>"}')
    message = data.get("message")
    if not isinstance(message, str) or not message.strip():
        raise BadRequest("'message' must be a non-empty string")
    stream = data.get("stream", False)
    if not isinstance(stream, bool):
        raise BadRequest("'stream' must be true or false")
    conversation = data.get("conversation")
    if conversation in (None, ""):
        return ChatRequest(message, uuid.uuid4(), stream, new=True)
    try:
        return ChatRequest(message, uuid.UUID(str(conversation)), stream)
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


def _store_question(bot_id: int, chat: ChatRequest, request_id: str) -> tuple[list[dict[str, str]], int]:
    # A conversation this request starts has nothing stored yet: no query for its history.
    history = [] if chat.new else load_history(bot_id, chat.conversation)
    row = ChatMessage.objects.create(
        bot_id=bot_id, conversation=chat.conversation, role=Role.USER, content=chat.message, request_id=request_id
    )
    return history, row.pk


def _store_answer(answer: ChatMessage) -> int:
    answer.save()
    return answer.pk


@dataclass
class _Outcome:
    reply: LLMReply | None = None
    parts: list[str] = field(default_factory=list)
    error: str = ""
    code: str = ""
    status: int = 200
    interrupted: bool = False


async def handle_chat(
    ctx: BotContext, chat: ChatRequest, request_id: str, timeout: float, on_piece: PieceSink | None = None
) -> ChatResult:
    """Answer one message. Never raises for an LLM or database failure.

    `on_piece` receives each piece of the answer as the LLM produces it (streaming).
    Cancelling the task (the client went away) stops the LLM request, stores what was
    generated so far marked as interrupted, and re-raises.
    """
    started = time.perf_counter()
    try:
        try:
            history, question_id = await in_db(_store_question, ctx.bot_id, chat, request_id)
        except DatabaseError as exc:
            MESSAGE_ERRORS.labels(bot=ctx.slug).inc()
            log.error("chat storage failed", extra={"error": f"{type(exc).__name__}: {exc}"})
            return ChatResult(
                503, {"error": "database_unavailable", "detail": "the chat could not be stored; try again"}
            )
        outcome = _Outcome()
        try:
            await _ask(ctx, chat, history, request_id, started, timeout, on_piece, outcome)
        except asyncio.CancelledError:
            outcome.interrupted, outcome.error, outcome.code = True, "", "interrupted"
            # Stored even though our task is being cancelled: the partial answer is kept.
            await asyncio.shield(asyncio.ensure_future(_finish(ctx, chat, request_id, started, question_id, outcome)))
            raise
        return await _finish(ctx, chat, request_id, started, question_id, outcome)
    finally:
        MESSAGE_SECONDS.labels(bot=ctx.slug).observe(time.perf_counter() - started)


async def _ask(
    ctx: BotContext,
    chat: ChatRequest,
    history: list[dict[str, str]],
    request_id: str,
    started: float,
    timeout: float,
    on_piece: PieceSink | None,
    outcome: _Outcome,
) -> None:
    with ctx.lock:
        system_prompt = ctx.system_prompt
    messages = ([{"role": "system", "content": system_prompt}] if system_prompt else []) + history
    messages.append({"role": "user", "content": chat.message})
    llm_started = time.perf_counter()
    try:
        # The whole answer is bounded by BOT_CHAT_TIMEOUT from the moment the chat arrived.
        async with asyncio.timeout(max(0.0, timeout - (llm_started - started))):
            async with aclosing(ctx.backend.stream(messages, request_id=request_id)) as items:
                async for item in items:
                    if isinstance(item, LLMReply):
                        outcome.reply = item
                        continue
                    if not outcome.parts:
                        FIRST_TOKEN_SECONDS.labels(bot=ctx.slug).observe(time.perf_counter() - started)
                    outcome.parts.append(item)
                    if on_piece is not None:
                        await on_piece(item)
    except TimeoutError:
        outcome.status, outcome.code = 504, "timeout"
        outcome.error = (
            f"the {ctx.backend.name} backend gave no complete answer within BOT_CHAT_TIMEOUT ({timeout:g} s)"
        )
    except LLMError as exc:
        outcome.status, outcome.code, outcome.error = 502, "llm_error", str(exc) or type(exc).__name__
    except Exception as exc:  # a client bug is still a failed answer: stored and counted
        log.exception("llm backend raised unexpectedly")
        outcome.status, outcome.code = 502, "llm_error"
        outcome.error = f"unexpected {type(exc).__name__} in the {ctx.backend.name} backend: {exc}"
    finally:
        LLM_SECONDS.observe(time.perf_counter() - llm_started)


async def _finish(
    ctx: BotContext, chat: ChatRequest, request_id: str, started: float, question_id: int, outcome: _Outcome
) -> ChatResult:
    latency_ms = round((time.perf_counter() - started) * 1000)
    reply = outcome.reply
    failed = reply is None or bool(outcome.error)
    MESSAGES.labels(bot=ctx.slug).inc()
    answer = ChatMessage(
        bot_id=ctx.bot_id,
        conversation=chat.conversation,
        role=Role.ASSISTANT,
        # A failed answer stores no text; an interrupted one keeps what the client was sent.
        content="".join(outcome.parts) if outcome.interrupted else ("" if failed else reply.content),
        latency_ms=latency_ms,
        prompt_tokens=reply.prompt_tokens if reply else None,
        completion_tokens=reply.completion_tokens if reply else None,
        error=outcome.error,
        interrupted=outcome.interrupted,
        request_id=request_id,
    )
    common = {"conversation": str(chat.conversation), "latency_ms": latency_ms, "request_id": request_id}
    try:
        answer_id = await in_db(_store_answer, answer)
    except DatabaseError as exc:
        MESSAGE_ERRORS.labels(bot=ctx.slug).inc()
        log.error("chat storage failed", extra={"error": f"{type(exc).__name__}: {exc}"})
        return ChatResult(503, {"error": "database_unavailable", "detail": "the answer could not be stored", **common})
    ids = {"message_id": question_id, "reply_id": answer_id}
    if outcome.interrupted:
        log.info("chat interrupted by the client", extra={"conversation": str(chat.conversation)})
        return ChatResult(499, {"error": "interrupted", "detail": "the client went away", **common, **ids})
    if failed:
        MESSAGE_ERRORS.labels(bot=ctx.slug).inc()
        error = outcome.error or "the LLM stream ended without a final answer"
        log.warning("llm failed", extra={"error": error, "conversation": str(chat.conversation)})
        return ChatResult(
            outcome.status if outcome.error else 502,
            {"error": outcome.code or "llm_error", "detail": error, **common, **ids},
        )
    LLM_TOKENS.labels(bot=ctx.slug, kind="prompt").inc(reply.prompt_tokens)
    LLM_TOKENS.labels(bot=ctx.slug, kind="completion").inc(reply.completion_tokens)
    body = {
        "reply": reply.content,
        **common,
        "prompt_tokens": reply.prompt_tokens,
        "completion_tokens": reply.completion_tokens,
        **ids,
    }
    return ChatResult(200, body)
