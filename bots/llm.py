"""LLM backends behind one small interface: Ollama, OpenAI-compatible servers, and echo.

A backend checks at start that its model exists (`check_model`) and answers one chat
(`chat`). Failures are `LLMError` subclasses whose message is one readable sentence, so the
runner can store it on the chat row and print it as a start-up error.

Retries: a busy server (503, 429) and connection errors are retried with exponential
backoff, at most `retries` more times. A read timeout is not retried: the server may still
be generating, and a second request would only double the wait.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Protocol

import httpx
from tenacity import Retrying, retry_if_exception_type, stop_after_attempt, wait_exponential

from ops.logs import REQUEST_ID_HEADER


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


class LLMBackend(Protocol):
    name: str
    model: str

    def check_model(self) -> None: ...

    def chat(self, messages: list[dict[str, str]], *, request_id: str) -> LLMReply: ...


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
    """Shared HTTP plumbing: one pooled client, timeouts, bounded retries, error mapping."""

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
        total_timeout: float | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.retries = retries
        self.backoff = backoff
        # A stream that keeps dribbling tokens is still bounded as a whole.
        self.total_timeout = total_timeout or read_timeout
        self.client = httpx.Client(
            base_url=self.base_url,
            timeout=httpx.Timeout(read_timeout, connect=connect_timeout),
            headers=headers or {},
            # One runner serves ~16 chats at once; keep that many connections warm.
            limits=httpx.Limits(max_connections=32, max_keepalive_connections=16),
        )

    def close(self) -> None:
        self.client.close()

    def _retrying(self) -> Retrying:
        return Retrying(
            retry=retry_if_exception_type((LLMBusy, LLMUnavailable)),
            stop=stop_after_attempt(self.retries + 1),
            wait=wait_exponential(multiplier=self.backoff, max=5.0),
            reraise=True,
        )

    def _call(self, fn, *args: Any, **kwargs: Any) -> Any:
        for attempt in self._retrying():
            with attempt:
                return self._mapped(fn, *args, **kwargs)
        raise AssertionError("unreachable")  # pragma: no cover - reraise=True always raises

    def _mapped(self, fn, *args: Any, **kwargs: Any) -> Any:
        """Run one request, turning transport errors into LLMError subclasses."""
        try:
            return fn(*args, **kwargs)
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
            raise LLMUnavailable(f"{self.server} at {self.base_url} is not reachable: {exc}") from exc
        except httpx.TimeoutException as exc:
            raise LLMTimeout(f"{self.server} at {self.base_url} timed out: {type(exc).__name__}") from exc
        except httpx.TransportError as exc:
            raise LLMError(f"{self.server} at {self.base_url} failed: {type(exc).__name__}: {exc}") from exc

    def _raise_for_status(self, response: httpx.Response) -> None:
        if response.status_code < 400:
            return
        response.read()  # a no-op for a plain response; a streamed one has not read its body yet
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


class OllamaBackend(_HTTPBackend):
    """Ollama's native API: GET /api/tags, POST /api/chat (NDJSON stream or one JSON)."""

    name = "ollama"
    server = "Ollama server"

    def __init__(self, base_url: str, model: str, *, stream: bool = True, **kwargs: Any) -> None:
        super().__init__(base_url, model, **kwargs)
        # Streaming by default: the read timeout then bounds the gap between tokens, not
        # the whole generation, so a long answer does not look like a dead server.
        self.stream = stream

    def _missing_model(self) -> ModelNotFound:
        return ModelNotFound(
            f"model '{self.model}' is not available on the Ollama server at {self.base_url}: "
            f"pull it with 'ollama pull {self.model}'"
        )

    def check_model(self) -> None:
        def tags() -> list[str]:
            response = self.client.get("/api/tags")
            self._raise_for_status(response)
            return [m.get("name") or m.get("model", "") for m in response.json().get("models", [])]

        if not any(_model_matches(self.model, name) for name in self._call(tags)):
            raise self._missing_model()

    def chat(self, messages: list[dict[str, str]], *, request_id: str) -> LLMReply:
        body = {"model": self.model, "messages": messages, "stream": self.stream}
        headers = self._headers(request_id)
        if self.stream:
            return self._call(self._chat_stream, body, headers)
        return self._call(self._chat_once, body, headers)

    def _chat_once(self, body: dict, headers: dict[str, str]) -> LLMReply:
        response = self.client.post("/api/chat", json=body, headers=headers)
        self._raise_for_status(response)
        data = self._json(response.content)
        if "error" in data:
            raise self._in_band_error(data["error"])
        return LLMReply(
            content=(data.get("message") or {}).get("content", ""),
            prompt_tokens=int(data.get("prompt_eval_count") or 0),
            completion_tokens=int(data.get("eval_count") or 0),
        )

    def _chat_stream(self, body: dict, headers: dict[str, str]) -> LLMReply:
        deadline = time.monotonic() + self.total_timeout
        with self.client.stream("POST", "/api/chat", json=body, headers=headers) as response:
            self._raise_for_status(response)
            parts: list[str] = []
            for data in self._ndjson(response.iter_lines()):
                # A 200 stream can still fail: Ollama then sends {"error": ...} as a line.
                if "error" in data:
                    raise self._in_band_error(data["error"])
                parts.append((data.get("message") or {}).get("content", ""))
                if data.get("done"):
                    return LLMReply(
                        content="".join(parts),
                        prompt_tokens=int(data.get("prompt_eval_count") or 0),
                        completion_tokens=int(data.get("eval_count") or 0),
                    )
                if time.monotonic() > deadline:
                    raise LLMTimeout(f"Ollama server at {self.base_url} did not finish within {self.total_timeout:g} s")
        raise LLMError(f"Ollama server at {self.base_url} ended the stream without a final 'done' line")

    def _ndjson(self, lines: Iterator[str]) -> Iterator[dict]:
        for line in lines:
            if line.strip():
                yield self._json(line)

    def _json(self, raw: str | bytes) -> dict:
        try:
            data = json.loads(raw)
        except ValueError as exc:
            raise LLMError(f"Ollama server at {self.base_url} sent invalid JSON: {exc}") from exc
        if not isinstance(data, dict):
            raise LLMError(f"Ollama server at {self.base_url} sent an unexpected reply")
        return data

    def _in_band_error(self, error: Any) -> LLMError:
        return LLMError(f"Ollama server at {self.base_url} failed while answering: {str(error)[:300]}")


class OpenAIBackend(_HTTPBackend):
    """OpenAI-compatible /chat/completions (llama.cpp server, vLLM, Ollama's /v1)."""

    name = "openai"
    server = "OpenAI-compatible server"

    def __init__(self, base_url: str, model: str, *, api_key: str | None = None, **kwargs: Any) -> None:
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        super().__init__(base_url, model, headers=headers, **kwargs)

    def check_model(self) -> None:
        def models() -> list[str]:
            response = self.client.get(f"{self.base_url}/models")
            self._raise_for_status(response)
            return [m.get("id", "") for m in response.json().get("data", [])]

        if not any(_model_matches(self.model, name) for name in self._call(models)):
            raise self._missing_model()

    def chat(self, messages: list[dict[str, str]], *, request_id: str) -> LLMReply:
        body = {"model": self.model, "messages": messages, "stream": False}
        return self._call(self._chat_once, body, self._headers(request_id))

    def _chat_once(self, body: dict, headers: dict[str, str]) -> LLMReply:
        response = self.client.post(f"{self.base_url}/chat/completions", json=body, headers=headers)
        self._raise_for_status(response)
        try:
            data = response.json()
            content = data["choices"][0]["message"]["content"] or ""
        except (ValueError, KeyError, IndexError, TypeError) as exc:
            raise LLMError(f"{self.server} at {self.base_url} sent an unexpected reply: {exc!r}") from exc
        usage = data.get("usage") or {}
        return LLMReply(
            content=content,
            prompt_tokens=int(usage.get("prompt_tokens") or 0),
            completion_tokens=int(usage.get("completion_tokens") or 0),
        )


class EchoBackend:
    """Deterministic answers for demos and tests: no server, no randomness."""

    name = "echo"

    def __init__(self, model: str = "echo") -> None:
        self.model = model

    def check_model(self) -> None:
        return None

    def chat(self, messages: list[dict[str, str]], *, request_id: str) -> LLMReply:
        last = next((m["content"] for m in reversed(messages) if m.get("role") == "user"), "")
        content = f"echo: {last}"
        return LLMReply(
            content=content,
            prompt_tokens=sum(len(m.get("content", "").split()) for m in messages),
            completion_tokens=len(content.split()),
        )

    def close(self) -> None:
        return None


def get_backend(bot: Any) -> LLMBackend:
    """The backend a bot is configured for, with timeouts and retries from settings."""
    from django.conf import settings

    from bots.models import Backend

    common = {
        "connect_timeout": settings.LLM_CONNECT_TIMEOUT,
        "read_timeout": settings.LLM_READ_TIMEOUT,
        "retries": settings.LLM_RETRIES,
        "total_timeout": settings.BOT_CHAT_TIMEOUT,
    }
    if bot.backend == Backend.OLLAMA:
        return OllamaBackend(settings.OLLAMA_URL, bot.model_name, **common)
    if bot.backend == Backend.OPENAI:
        return OpenAIBackend(settings.OPENAI_URL, bot.model_name, api_key=settings.OPENAI_API_KEY, **common)
    if bot.backend == Backend.ECHO:
        return EchoBackend(bot.model_name)
    raise ValueError(f"unknown LLM backend {bot.backend!r}")
