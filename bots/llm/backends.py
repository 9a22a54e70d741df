"""The backends: Ollama's native API, OpenAI-compatible servers, and echo (no server)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from bots.llm.base import LLMError, LLMReply, ModelNotFound, StreamItem, collect
from bots.llm.http import HTTPBackend
from deia.probes import ProbeResult


class OllamaBackend(HTTPBackend):
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

    def list_models(self) -> list[str]:
        return [m.get("name") or m.get("model", "") for m in self._get_json("/api/tags").get("models") or []]

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


class OpenAIBackend(HTTPBackend):
    """OpenAI-compatible /chat/completions (llama.cpp server, vLLM, Ollama's /v1), streamed as SSE."""

    name = "openai"
    server = "OpenAI-compatible server"

    def __init__(self, base_url: str, model: str, *, api_key: str | None = None, **kwargs: Any) -> None:
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        super().__init__(base_url, model, headers=headers, **kwargs)

    def list_models(self) -> list[str]:
        return [m.get("id", "") for m in self._get_json(f"{self.base_url}/models").get("data") or []]

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

    def probe(self) -> ProbeResult:
        return ProbeResult(True, detail="echo needs no server", facts={"models": [self.model], "model_found": True})

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
