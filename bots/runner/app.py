"""The runner's ASGI application: /health, /chat and /metrics, no Django request stack.

Django's middleware, URL resolver and request objects cost more per chat than the rest of
the message path together; the runner needs none of them (the ORM is still used to store).

/chat answers only the control plane: the request must carry the secret this runner was
started with (header X-Bot-Secret), checked before the body is read. A runner answering
BOT_MAX_CONCURRENT_CHATS chats says 429 bot_busy at once rather than queueing. A client
that goes away mid-answer cancels the chat: the LLM request is closed and what was
generated so far is stored, marked as interrupted.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import os
import time
from collections.abc import Awaitable, Callable
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

from bots.metrics import CHAT_REJECTED, CHATS_IN_FLIGHT, REJECT_BOT_BUSY
from bots.runner.chat import BadRequest, BotContext, ChatResult, handle_chat, parse_chat
from bots.runner.protocol import (
    GENERATION_HEADER,
    MAX_CHAT_BODY_BYTES,
    MAX_MESSAGE_BYTES,
    SECRET_HEADER,
    SSE_CONTENT_TYPE,
    sse_event,
)
from deia.logs import REQUEST_ID_HEADER, new_request_id, reset_request_id, set_request_id
from deia.metrics import update_pool_gauges
from deia.proxies import scrape_allowed

log = logging.getLogger("deia.runner.request")

JSON = "application/json"
RETRY_AFTER_BUSY = "1"  # seconds; a chat slot frees as soon as one answer ends

Send = Callable[[dict], Awaitable[None]]
Receive = Callable[[], Awaitable[dict]]


def _header(scope: dict, name: bytes) -> str:
    for key, value in scope.get("headers", ()):
        if key == name:
            return value.decode("latin-1")
    return ""


async def _respond(send: Send, status: int, body: bytes, content_type: str, headers: list[tuple[str, str]]) -> None:
    raw = [(b"content-type", content_type.encode()), (b"content-length", str(len(body)).encode())]
    raw += [(k.lower().encode(), v.encode("latin-1")) for k, v in headers]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})


async def _wait_for_disconnect(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


class RunnerApp:
    def __init__(
        self, ctx: BotContext, backend_name: str, started: float, *, secret: str, max_chats: int, timeout: float
    ) -> None:
        self.ctx = ctx
        self.backend_name = backend_name
        self.started = started  # time.monotonic() at process start
        self.secret = secret.encode()
        self.max_chats = max_chats
        self.timeout = timeout  # BOT_CHAT_TIMEOUT
        self.draining = False
        self.inflight = 0
        # Fencing (bots.runner.server): this start's generation, and a check that says why this
        # runner may no longer serve (its heartbeat too old or refused), or None.
        self.generation = 0
        self.fenced: Callable[[], str | None] = lambda: None
        self.on_fenced: Callable[[str], None] = lambda reason: None
        self._gauge = CHATS_IN_FLIGHT.labels(bot=ctx.slug)

    async def __call__(self, scope: dict, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return  # no lifespan, no websockets
        request_id = new_request_id(_header(scope, b"x-request-id") or None)
        token = set_request_id(request_id)
        began = time.perf_counter()
        reply = _Reply(send, request_id)
        try:
            await self._route(scope, receive, reply)
        except ConnectionAbortedError:
            reply.status = 499  # the client left before its request was read
        except Exception:
            log.exception("runner request failed")
            if not reply.started:
                await reply.json(500, {"error": "internal_error", "detail": "the runner failed; see its log"})
        finally:
            # One line per request, never the message content.
            log.info(
                "request",
                extra={
                    "method": scope.get("method"),
                    "path": scope.get("path"),
                    "status": reply.status,
                    "duration_ms": round((time.perf_counter() - began) * 1000, 2),
                    "bot": self.ctx.slug,
                },
            )
            reset_request_id(token)

    async def _route(self, scope: dict, receive: Receive, reply: _Reply) -> None:
        method, path = scope.get("method", "GET"), scope.get("path", "/")
        routes = {"/health": ("GET", self.health), "/chat": ("POST", self.chat), "/metrics": ("GET", self.metrics)}
        if path not in routes:
            return await reply.json(
                404, {"error": "not_found", "detail": f"no route {path}; try /health, /chat or /metrics"}
            )
        allowed, view = routes[path]
        if method != allowed and not (allowed == "GET" and method == "HEAD"):
            return await reply.json(405, {"error": "method_not_allowed", "detail": f"{path} takes {allowed}"})
        await view(scope, receive, reply)

    async def health(self, scope: dict, receive: Receive, reply: _Reply) -> None:
        body = {
            "status": "stopping" if self.draining else "ok",
            "bot_id": self.ctx.bot_id,
            "generation": self.generation,
            "bot": self.ctx.slug,
            "model": self.ctx.model,
            "backend": self.backend_name,
            "pid": os.getpid(),
            "uptime_seconds": round(time.monotonic() - self.started, 3),
        }
        await reply.json(503 if self.draining else 200, body)

    async def metrics(self, scope: dict, receive: Receive, reply: _Reply) -> None:
        peer = (scope.get("client") or (None,))[0]
        if not scrape_allowed(peer, _header(scope, b"authorization")):
            detail = "allowed from METRICS_ALLOWED_CIDRS or with the METRICS_TOKEN bearer token"
            return await reply.json(403, {"error": "forbidden", "detail": detail})
        update_pool_gauges()
        await reply.raw(200, generate_latest(REGISTRY), CONTENT_TYPE_LATEST)

    async def chat(self, scope: dict, receive: Receive, reply: _Reply) -> None:
        given = _header(scope, SECRET_HEADER.lower().encode()).encode("latin-1")
        if not self.secret or not hmac.compare_digest(given, self.secret):
            return await reply.json(401, {"error": "unauthorized", "detail": "this bot answers only the control plane"})
        asked = _header(scope, GENERATION_HEADER.lower().encode())
        fenced = self.fenced() or (
            f"generation {asked} asked, this runner is generation {self.generation}"
            if asked and asked != str(self.generation)
            else None
        )
        if fenced:
            detail = f"bot {self.ctx.slug!r}: this runner is stale: {fenced}"
            await reply.json(503, {"error": "fenced", "detail": detail})
            self.on_fenced(fenced)
            return None
        if self.inflight >= self.max_chats:
            CHAT_REJECTED.labels(bot=self.ctx.slug, reason=REJECT_BOT_BUSY).inc()
            detail = (
                f"bot {self.ctx.slug!r} is answering {self.max_chats} chats (BOT_MAX_CONCURRENT_CHATS); retry later"
            )
            return await reply.json(429, {"error": "bot_busy", "detail": detail}, [("Retry-After", RETRY_AFTER_BUSY)])
        self.inflight += 1
        self._gauge.inc()
        try:
            await self._chat(scope, receive, reply)
        finally:
            self.inflight -= 1
            self._gauge.dec()

    async def _chat(self, scope: dict, receive: Receive, reply: _Reply) -> None:
        body = await _read_body(receive)
        if body is None:
            return await reply.json(
                413, {"error": "payload_too_large", "detail": f"the body is limited to {MAX_CHAT_BODY_BYTES} bytes"}
            )
        try:
            chat = parse_chat(body)
        except BadRequest as exc:
            return await reply.json(400, {"error": "bad_request", "detail": str(exc)})
        if len(chat.message.encode("utf-8", "surrogatepass")) > MAX_MESSAGE_BYTES:
            detail = f"the message is limited to {MAX_MESSAGE_BYTES} bytes"
            return await reply.json(413, {"error": "payload_too_large", "detail": detail})
        stream = chat.stream or SSE_CONTENT_TYPE in _header(scope, b"accept")

        async def piece(text: str) -> None:
            if not reply.started:
                await reply.start_stream()
            await reply.chunk(sse_event("chunk", {"content": text}))

        task = asyncio.ensure_future(
            handle_chat(self.ctx, chat, reply.request_id, self.timeout, on_piece=piece if stream else None)
        )
        gone = asyncio.ensure_future(_wait_for_disconnect(receive))
        await asyncio.wait({task, gone}, return_when=asyncio.FIRST_COMPLETED)
        if not task.done():  # the client went away: stop the LLM, keep the partial answer
            reply.status = 499
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                pass
            return
        gone.cancel()
        result: ChatResult = task.result()
        if not reply.started:  # not streamed, or failed before its first piece: plain JSON
            return await reply.json(result.status, result.body)
        reply.status = result.status
        await reply.chunk(sse_event(result.event, {"status": result.status, **result.body}), last=True)


async def _read_body(receive: Receive) -> bytes | None:
    """The request body, or None past MAX_CHAT_BODY_BYTES (read no further than one byte past it)."""
    body = bytearray()
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ConnectionAbortedError
        body += message.get("body", b"")
        if len(body) > MAX_CHAT_BODY_BYTES:
            return None
        if not message.get("more_body"):
            return bytes(body)


class _Reply:
    """One response: plain JSON, raw bytes, or a stream of server-sent events."""

    def __init__(self, send: Send, request_id: str) -> None:
        self.send = send
        self.request_id = request_id
        self.status = 0
        self.started = False

    def _headers(self, extra: list[tuple[str, str]] | None = None) -> list[tuple[str, str]]:
        return [(REQUEST_ID_HEADER, self.request_id), *(extra or [])]

    async def json(self, status: int, body: dict[str, Any], headers: list[tuple[str, str]] | None = None) -> None:
        await self.raw(status, json.dumps(body).encode(), JSON, headers)

    async def raw(
        self, status: int, body: bytes, content_type: str, headers: list[tuple[str, str]] | None = None
    ) -> None:
        self.status, self.started = status, True
        await _respond(self.send, status, body, content_type, self._headers(headers))

    async def start_stream(self) -> None:
        self.status, self.started = 200, True
        headers = [(b"content-type", SSE_CONTENT_TYPE.encode()), (b"cache-control", b"no-cache")]
        headers += [(k.lower().encode(), v.encode("latin-1")) for k, v in self._headers()]
        await self.send({"type": "http.response.start", "status": 200, "headers": headers})

    async def chunk(self, data: bytes, last: bool = False) -> None:
        await self.send({"type": "http.response.body", "body": data, "more_body": not last})
