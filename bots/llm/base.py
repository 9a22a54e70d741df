"""What every LLM backend shares: its failures, its answer, the interface a runner uses."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Protocol

import httpx

from deia.probes import ProbeResult


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

    def probe(self) -> ProbeResult: ...

    def stream(self, messages: list[dict[str, str]], *, request_id: str) -> AsyncIterator[StreamItem]: ...

    async def chat(self, messages: list[dict[str, str]], *, request_id: str) -> LLMReply: ...

    async def aclose(self) -> None: ...


async def collect(items: AsyncIterator[StreamItem]) -> LLMReply:
    """The final reply of a stream (its pieces are dropped)."""
    async for item in items:
        if isinstance(item, LLMReply):
            return item
    raise LLMError("the LLM stream ended without a final answer")


def model_matches(wanted: str, available: str) -> bool:
    # Ollama names carry a tag; a name without one means ":latest".
    def norm(name: str) -> str:
        return name if ":" in name else f"{name}:latest"

    return norm(wanted) == norm(available)


def error_text(response: httpx.Response) -> str:
    """The server's own error message: Ollama {"error": "..."}, OpenAI {"error": {"message": ...}}."""
    try:
        body = response.json()
    except ValueError:
        return response.text.strip()[:300] or response.reason_phrase
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict):
        error = error.get("message")
    return str(error or body)[:300]
