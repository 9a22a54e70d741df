"""LLM backends behind one small interface: Ollama, OpenAI-compatible servers, and echo.

A backend answers chats asynchronously: `stream` yields the answer's text as it is
generated and ends with the whole `LLMReply`; `chat` is the same without the pieces.
Failures are `LLMError` subclasses whose message is one readable sentence, so the runner
can store it on the chat row and print it as a start-up error.

`probe_llm` is the one check of an LLM server, for every caller: does the server answer
its model list (Ollama's /api/tags, an OpenAI-compatible server's /models), and does the
list name the model? The runner refuses to start on a failed probe, diagnose grades it
OK/WARN/CRIT, the health endpoints up or down (see `deia.probes`).

Retries: a busy server (503, 429) and connection errors are retried with exponential
backoff, at most `retries` more times, and only before the first token: a stream that has
started is never replayed. A read timeout is not retried either: the server may still be
generating, and a second request would only double the wait. The whole answer's deadline
(BOT_CHAT_TIMEOUT) is the runner's, not the backend's.

Cancelling the task that iterates `stream` (the client went away) closes the HTTP request
to the LLM server at once, so the server stops generating.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings

from bots.llm.backends import EchoBackend, OllamaBackend, OpenAIBackend
from bots.llm.base import (
    LLMBackend,
    LLMBusy,
    LLMError,
    LLMReply,
    LLMTimeout,
    LLMUnavailable,
    ModelNotFound,
    StreamItem,
    collect,
)
from bots.models import Backend
from deia.probes import ProbeResult

__all__ = [
    "EchoBackend",
    "LLMBackend",
    "LLMBusy",
    "LLMError",
    "LLMReply",
    "LLMTimeout",
    "LLMUnavailable",
    "ModelNotFound",
    "OllamaBackend",
    "OpenAIBackend",
    "StreamItem",
    "collect",
    "get_backend",
    "probe_llm",
    "server_url",
]


def server_url(backend: str) -> str:
    """The URL of the server a backend kind talks to, from settings ("" for echo)."""
    return {Backend.OLLAMA: settings.OLLAMA_URL, Backend.OPENAI: settings.OPENAI_URL}.get(backend, "")


def _build(backend: str, url: str, model: str, **options: Any) -> LLMBackend:
    if backend == Backend.OLLAMA:
        return OllamaBackend(url, model, **options)
    if backend == Backend.OPENAI:
        return OpenAIBackend(url, model, api_key=settings.OPENAI_API_KEY, **options)
    if backend == Backend.ECHO:
        return EchoBackend(model)
    raise ValueError(f"unknown LLM backend {backend!r}")


def get_backend(bot: Any) -> LLMBackend:
    """The backend a bot is configured for, with timeouts and retries from settings."""
    return _build(
        bot.backend,
        server_url(bot.backend),
        bot.model_name,
        connect_timeout=settings.LLM_CONNECT_TIMEOUT,
        read_timeout=settings.LLM_READ_TIMEOUT,
        retries=settings.LLM_RETRIES,
        # Every chat the runner may hold at once, plus room for the start-up check.
        max_connections=settings.BOT_MAX_CONCURRENT_CHATS + 4,
    )


def probe_llm(target: Any, *, timeout: float | None = None, retries: int | None = None) -> ProbeResult:
    """Probe a bot's LLM server for its model: `target` is a Bot or (backend, url, model).

    An empty model asks only that the server answers its list. `timeout` bounds connect
    and read alike (default: LLM_CONNECT_TIMEOUT and LLM_READ_TIMEOUT), `retries` the
    retries of a busy or unreachable server (default: LLM_RETRIES). A server's failure
    does not raise: a missing model is a failed result whose `error` is a `ModelNotFound`, and
    `facts["models"]` lists what the server has.
    """
    backend, url, model = (
        target if isinstance(target, tuple) else (target.backend, server_url(target.backend), target.model_name)
    )
    return _build(
        backend,
        url,
        model,
        connect_timeout=settings.LLM_CONNECT_TIMEOUT if timeout is None else timeout,
        read_timeout=settings.LLM_READ_TIMEOUT if timeout is None else timeout,
        retries=settings.LLM_RETRIES if retries is None else retries,
    ).probe()
