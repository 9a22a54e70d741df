"""LLM backends behind one small interface: Ollama, OpenAI-compatible servers, and echo.

A backend checks at start that its model exists (`check_model`, synchronous: the runner
calls it once before serving) and answers chats asynchronously: `stream` yields the
answer's text as it is generated and ends with the whole `LLMReply`; `chat` is the same
without the pieces. Failures are `LLMError` subclasses whose message is one readable
sentence, so the runner can store it on the chat row and print it as a start-up error.

Retries: a busy server (503, 429) and connection errors are retried with exponential
backoff, at most `retries` more times, and only before the first token: a stream that has
started is never replayed. A read timeout is not retried either: the server may still be
generating, and a second request would only double the wait. The whole answer's deadline
(BOT_CHAT_TIMEOUT) is the runner's, not the backend's.

Cancelling the task that iterates `stream` (the client went away) closes the HTTP request
to the LLM server at once, so the server stops generating.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, Protocol

import httpx
from tenacity import AsyncRetrying, Retrying, retry_if_exception_type, stop_after_attempt, wait_exponential

from bots.models import Backend
from deia.logs import REQUEST_ID_HEADER


class LLMError(Exception):
    """The backend did not answer; str(exc) says why in one line."""


class ModelNotFound(LLMError):
    pass


class LLMBusy(LLMError):
    """The server answered 503/429: try again later."""


class LLMUnavailable(LLMError):
    """The server could not be reached (connection refused, connect timeout)."""


class LLMTimeout(LLMError):
    pass


@dataclass(frozen=True)
class LLMReply:
    content: str
    prompt_tokens: int
    completion_tokens: int


# What `stream` yields: text pieces (str), then exactly one LLMReply.
StreamItem = str | LLMReply


class LLMBackend(Protocol):
    name: str
    model: str

    def check_model(self) -> None: ...

    def stream(self, messages: list[dict[str, str]], *, request_id: str) -> AsyncIterator[StreamItem]: ...

    async def chat(self, messages: list[dict[str, str]], *, request_id: str) -> LLMReply: ...

    async def aclose(self) -> None: ...


async def collect(items: AsyncIterator[StreamItem]) -> LLMReply:
    """The final reply of a stream (its pieces are dropped)."""
    async for item in items:
        if isinstance(item, LLMReply):
            return item
    raise LLMError("the LLM stream ended without a final answer")


def _model_matches(wanted: str, available: str) -> bool:
    # Ollama names carry a tag; a name without one means ":latest".
    def norm(name: str) -> str:
        return name if ":" in name else f"{name}:latest"

    return norm(wanted) == norm(available)


def _error_text(response: httpx.Response) -> str:
    """The server's own error message: Ollama {"error": "..."}, OpenAI {"error": {"message": ...}}."""
    try:
        body = response.json()
    except ValueError:
        return response.text.strip()[:300] or response.reason_phrase
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict):
        error = error.get("message")
    return str(error or body)[:300]


class _HTTPBackend:
    """Shared HTTP plumbing: pooled clients, timeouts, bounded retries, error mapping."""

    name = "http"
    server = "LLM server"

    def __init__(
        self,
        base_url: str,
        model: str,
        *,
        connect_timeout: float,
        read_timeout: float,
        retries: int,
        backoff: float = 0.25,
        headers: dict[str, str] | None = None,
        max_connections: int = 64,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.retries = retries
        self.backoff = backoff
        self._client_options: dict[str, Any] = {
            "base_url": self.base_url,
            # Streaming: the read timeout bounds the gap between tokens, not the answer.
            "timeout": httpx.Timeout(read_timeout, connect=connect_timeout),
            "headers": headers or {},
        }
        self._limits = httpx.Limits(max_connections=max_connections, max_keepalive_connections=16)
        self._client: httpx.AsyncClient | None = None

    # --- clients ---------------------------------------------------------------------
    def _async_client(self) -> httpx.AsyncClient:
        # Built on first use, inside the runner's event loop, and kept: one pool per runner.
        if self._client is None:
            self._client = httpx.AsyncClient(limits=self._limits, **self._client_options)
        return self._client

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    def _get_json(self, path: str) -> Any:
        """One checked GET for the start-up model check (synchronous, retried)."""

        def get() -> Any:
            with httpx.Client(**self._client_options) as client:
                response = client.get(path)
                self._raise_for_status(response)
                return response.json()

        for attempt in Retrying(**self._retry_policy()):
            with attempt:
                return self._mapped(get)
        raise AssertionError("unreachable")  # pragma: no cover - reraise=True always raises

    # --- errors and retries ------------------------------------------------------------
    def _retry_policy(self) -> dict[str, Any]:
        return {
            "retry": retry_if_exception_type((LLMBusy, LLMUnavailable)),
            "stop": stop_after_attempt(self.retries + 1),
            "wait": wait_exponential(multiplier=self.backoff, max=5.0),
            "reraise": True,
        }

    def _mapped(self, fn: Callable[[], Any]) -> Any:
        """Run one request, turning transport errors into LLMError subclasses."""
        try:
            return fn()
        except httpx.HTTPError as exc:
            raise self._transport_error(exc) from exc

    def _transport_error(self, exc: httpx.HTTPError) -> LLMError:
        if isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout):
            return LLMUnavailable(f"{self.server} at {self.base_url} is not reachable: {exc}")
        if isinstance(exc, httpx.TimeoutException):
            return LLMTimeout(f"{self.server} at {self.base_url} timed out: {type(exc).__name__}")
        return LLMError(f"{self.server} at {self.base_url} failed: {type(exc).__name__}: {exc}")

    def _raise_for_status(self, response: httpx.Response) -> None:
        if response.status_code < 400:
            return
        detail = _error_text(response)
        if response.status_code == 404:
            raise ModelNotFound(
                f"model '{self.model}' is not available on the {self.server} at {self.base_url}: {detail}"
            )
        if response.status_code in (429, 503):
            raise LLMBusy(f"{self.server} at {self.base_url} is busy ({response.status_code}): {detail}")
        raise LLMError(f"{self.server} at {self.base_url} answered {response.status_code}: {detail}")

    def _missing_model(self) -> ModelNotFound:
        return ModelNotFound(f"model '{self.model}' is not available on the {self.server} at {self.base_url}")

    @staticmethod
    def _headers(request_id: str) -> dict[str, str]:
        return {REQUEST_ID_HEADER: request_id} if request_id else {}

    def _json(self, raw: str | bytes) -> dict:
        try:
            data = json.loads(raw)
        except ValueError as exc:
            raise LLMError(f"{self.server} at {self.base_url} sent invalid JSON: {exc}") from exc
        if not isinstance(data, dict):
            raise LLMError(f"{self.server} at {self.base_url} sent an unexpected reply")
        return data

    # --- the streamed request ------------------------------------------------------------
    @asynccontextmanager
    async def _open(self, path: str, body: dict, request_id: str) -> AsyncIterator[httpx.Response]:
        """POST and hand over the response once its status is good; retried until then."""
        client = self._async_client()
        headers = self._headers(request_id)
        async for attempt in AsyncRetrying(**self._retry_policy()):
            with attempt:
                try:
                    request = client.build_request("POST", path, json=body, headers=headers)
                    response = await client.send(request, stream=True)
                except httpx.HTTPError as exc:
                    raise self._transport_error(exc) from exc
                if response.status_code >= 400:
                    try:
                        await response.aread()
                    finally:
                        await response.aclose()
                    self._raise_for_status(response)
        try:
            yield response
        except httpx.HTTPError as exc:
            raise self._transport_error(exc) from exc
        finally:
            # Also on cancellation: closing the response closes the connection mid-answer.
            await response.aclose()

    async def chat(self, messages: list[dict[str, str]], *, request_id: str) -> LLMReply:
        return await collect(self.stream(messages, request_id=request_id))

    def stream(self, messages: list[dict[str, str]], *, request_id: str) -> AsyncIterator[StreamItem]:
        raise NotImplementedError


class OllamaBackend(_HTTPBackend):
    """Ollama's native API: GET /api/tags, POST /api/chat (NDJSON stream or one JSON)."""

    name = "ollama"
    server = "Ollama server"

    def __init__(self, base_url: str, model: str, *, stream: bool = True, **kwargs: Any) -> None:
        super().__init__(base_url, model, **kwargs)
        # Streaming by default: tokens reach the client as they come, and the read timeout
        # bounds the gap between tokens, so a long answer does not look like a dead server.
        self.streaming = stream

    def _missing_model(self) -> ModelNotFound:
        return ModelNotFound(
            f"model '{self.model}' is not available on the Ollama server at {self.base_url}: "
            f"pull it with 'ollama pull {self.model}'"
        )

    def check_model(self) -> None:
        models = self._get_json("/api/tags").get("models", [])
        if not any(_model_matches(self.model, m.get("name") or m.get("model", "")) for m in models):
            raise self._missing_model()

    async def stream(self, messages: list[dict[str, str]], *, request_id: str) -> AsyncIterator[StreamItem]:
        body = {"model": self.model, "messages": messages, "stream": self.streaming}
        async with self._open("/api/chat", body, request_id) as response:
            if not self.streaming:
                data = self._json(await response.aread())
                self._check_in_band(data)
                content = (data.get("message") or {}).get("content", "")
                if content:
                    yield content
                yield self._reply(content, data)
                return
            parts: list[str] = []
            async for line in response.aiter_lines():
                if not line.strip():
                    continue
                data = self._json(line)
                # A 200 stream can still fail: Ollama then sends {"error": ...} as a line.
                self._check_in_band(data)
                piece = (data.get("message") or {}).get("content", "")
                if piece:
                    parts.append(piece)
                    yield piece
                if data.get("done"):
                    yield self._reply("".join(parts), data)
                    return
        raise LLMError(f"Ollama server at {self.base_url} ended the stream without a final 'done' line")

    def _check_in_band(self, data: dict) -> None:
        if "error" in data:
            raise LLMError(f"Ollama server at {self.base_url} failed while answering: {str(data['error'])[:300]}")

    @staticmethod
    def _reply(content: str, final: dict) -> LLMReply:
        return LLMReply(
            content=content,
            prompt_tokens=int(final.get("prompt_eval_count") or 0),
            completion_tokens=int(final.get("eval_count") or 0),
        )


class OpenAIBackend(_HTTPBackend):
    """OpenAI-compatible /chat/completions (llama.cpp server, vLLM, Ollama's /v1), streamed as SSE."""

    name = "openai"
    server = "OpenAI-compatible server"

    def __init__(self, base_url: str, model: str, *, api_key: str | None = None, **kwargs: Any) -> None:
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        super().__init__(base_url, model, headers=headers, **kwargs)

    def check_model(self) -> None:
        models = self._get_json(f"{self.base_url}/models").get("data", [])
        if not any(_model_matches(self.model, m.get("id", "")) for m in models):
            raise self._missing_model()

    async def stream(self, messages: list[dict[str, str]], *, request_id: str) -> AsyncIterator[StreamItem]:
        # include_usage: the last event before [DONE] carries the token counts.
        body = {"model": self.model, "messages": messages, "stream": True, "stream_options": {"include_usage": True}}
        parts: list[str] = []
        usage: dict = {}
        async with self._open(f"{self.base_url}/chat/completions", body, request_id) as response:
            async for line in response.aiter_lines():
                if not line.startswith("data:"):
                    continue  # blank separators, comments, event names
                payload = line[5:].strip()
                if payload == "[DONE]":
                    yield LLMReply(
                        content="".join(parts),
                        prompt_tokens=int(usage.get("prompt_tokens") or 0),
                        completion_tokens=int(usage.get("completion_tokens") or 0),
                    )
                    return
                data = self._json(payload)
                if "error" in data:
                    raise LLMError(f"{self.server} at {self.base_url} failed while answering: {_in(data['error'])}")
                usage = data.get("usage") or usage
                for choice in data.get("choices") or []:
                    piece = (choice.get("delta") or {}).get("content") or ""
                    if piece:
                        parts.append(piece)
                        yield piece
        raise LLMError(f"{self.server} at {self.base_url} ended the stream without [DONE]")


def _in(error: Any) -> str:
    return str(error.get("message") if isinstance(error, dict) else error)[:300]


class EchoBackend:
    """Deterministic answers for demos and tests: no server, no randomness; streamed word by word."""

    name = "echo"

    def __init__(self, model: str = "echo") -> None:
        self.model = model

    def check_model(self) -> None:
        return None

    async def stream(self, messages: list[dict[str, str]], *, request_id: str) -> AsyncIterator[StreamItem]:
        last = next((m["content"] for m in reversed(messages) if m.get("role") == "user"), "")
        content = f"echo: {last}"
        for i, word in enumerate(content.split(" ")):
            yield word if i == 0 else f" {word}"
        yield LLMReply(
            content=content,
            prompt_tokens=sum(len(m.get("content", "").split()) for m in messages),
            completion_tokens=len(content.split()),
        )

    async def chat(self, messages: list[dict[str, str]], *, request_id: str) -> LLMReply:
        return await collect(self.stream(messages, request_id=request_id))

    async def aclose(self) -> None:
        return None


def get_backend(bot: Any) -> LLMBackend:
    """The backend a bot is configured for, with timeouts and retries from settings."""
    from django.conf import settings

    common = {
        "connect_timeout": settings.LLM_CONNECT_TIMEOUT,
        "read_timeout": settings.LLM_READ_TIMEOUT,
        "retries": settings.LLM_RETRIES,
        # Every chat the runner may hold at once, plus room for the start-up check.
        "max_connections": settings.BOT_MAX_CONCURRENT_CHATS + 4,
    }
    if bot.backend == Backend.OLLAMA:
        return OllamaBackend(settings.OLLAMA_URL, bot.model_name, **common)
    if bot.backend == Backend.OPENAI:
        return OpenAIBackend(settings.OPENAI_URL, bot.model_name, api_key=settings.OPENAI_API_KEY, **common)
    if bot.backend == Backend.ECHO:
        return EchoBackend(bot.model_name)
    raise ValueError(f"unknown LLM backend {bot.backend!r}")
