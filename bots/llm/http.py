"""The HTTP plumbing every server-backed LLM backend shares.

Pooled clients, timeouts, bounded retries, the mapping of transport and status errors to
`LLMError`s, and the probe (`probe`: the model list answers and names the model). The
retry rules are in the package's docstring.
"""

from __future__ import annotations

import functools
import json
import ssl
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import httpx
from tenacity import AsyncRetrying, Retrying, retry_if_exception_type, stop_after_attempt, wait_exponential

from bots.llm.base import (
    LLMBusy,
    LLMError,
    LLMReply,
    LLMTimeout,
    LLMUnavailable,
    ModelNotFound,
    StreamItem,
    collect,
    error_text,
    model_matches,
)
from deia.logs import REQUEST_ID_HEADER
from deia.probes import ProbeResult
from deia.redact import redact


@functools.cache
def tls_context() -> ssl.SSLContext:
    """One verifying TLS context per process: loading the CA bundle for each client costs tens
    of milliseconds, and the runner template builds it once for every runner it forks."""
    return httpx.create_ssl_context()


class HTTPBackend:
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
            "verify": tls_context(),
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

    def _get_json(self, path: str) -> dict:
        """One checked GET of a model list (synchronous, retried).

        A 404 here means the URL is not such a server, not that a model is missing.
        """

        def get() -> dict:
            with httpx.Client(**self._client_options) as client:
                response = client.get(path)
                self._raise_for_status(response, listing=True)
                return self._json(response.content)

        for attempt in Retrying(**self._retry_policy()):
            with attempt:
                return self._mapped(get)
        raise AssertionError("unreachable")  # pragma: no cover - reraise=True always raises

    # --- the probe ---------------------------------------------------------------------
    def list_models(self) -> list[str]:
        raise NotImplementedError

    def probe(self) -> ProbeResult:
        """The server answers its model list, and lists this backend's model (if it has one)."""
        started = time.perf_counter()
        try:
            models = self.list_models()
        except LLMError as exc:
            return ProbeResult(False, time.perf_counter() - started, redact(str(exc)), error=exc)
        found = not self.model or any(model_matches(self.model, name) for name in models)
        facts = {"models": models, "model_found": found}
        if not found:
            missing = self._missing_model()
            return ProbeResult(False, time.perf_counter() - started, redact(str(missing)), facts, missing)
        return ProbeResult(True, time.perf_counter() - started, f"{len(models)} models", facts)

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
            return LLMUnavailable(f"{self.server} at {self.base_url} is not reachable: {type(exc).__name__}: {exc}")
        if isinstance(exc, httpx.TimeoutException):
            return LLMTimeout(f"{self.server} at {self.base_url} timed out: {type(exc).__name__}")
        return LLMError(f"{self.server} at {self.base_url} failed: {type(exc).__name__}: {exc}")

    def _raise_for_status(self, response: httpx.Response, *, listing: bool = False) -> None:
        if response.status_code < 400:
            return
        detail = error_text(response)
        if response.status_code == 404 and not listing:
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
