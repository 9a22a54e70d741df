"""The runner's WSGI application: a three-route plain WSGI callable, no Django request stack.

Django's middleware, URL resolver and request objects cost more per chat than the rest of
the message path together; the runner needs none of them (the ORM is still used to store).
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable
from http import HTTPStatus

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

from bots.runner.chat import BadRequest, BotContext, handle_chat, parse_chat
from ops.logs import REQUEST_ID_HEADER, new_request_id, reset_request_id, set_request_id

log = logging.getLogger("deia.runner.request")

MAX_BODY = 32 * 1024  # bytes of a /chat body; a chat message is text, not a document
JSON = "application/json"

Response = tuple[int, bytes | dict, str]


def _json_error(status: int, error: str, detail: str) -> Response:
    return status, {"error": error, "detail": detail}, JSON


class RunnerApp:
    def __init__(self, ctx: BotContext, backend_name: str, started: float) -> None:
        self.ctx = ctx
        self.backend_name = backend_name
        self.started = started  # time.monotonic() at process start
        self.draining = threading.Event()
        self._inflight = 0
        self._lock = threading.Lock()

    @property
    def inflight(self) -> int:
        with self._lock:
            return self._inflight

    def __call__(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        request_id = new_request_id(environ.get("HTTP_X_REQUEST_ID"))
        token = set_request_id(request_id)
        began = time.perf_counter()
        with self._lock:
            self._inflight += 1
        try:
            status, payload, content_type = self._route(environ, request_id)
        except Exception:
            log.exception("runner request failed")
            status, payload, content_type = _json_error(500, "internal_error", "the runner failed; see its log")
        finally:
            with self._lock:
                self._inflight -= 1
        try:
            body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
            headers = [
                ("Content-Type", content_type),
                ("Content-Length", str(len(body))),
                (REQUEST_ID_HEADER, request_id),
            ]
            start_response(f"{status} {HTTPStatus(status).phrase}", headers)
            # One line per request, never the message content.
            log.info(
                "request",
                extra={
                    "method": environ.get("REQUEST_METHOD"),
                    "path": environ.get("PATH_INFO"),
                    "status": status,
                    "duration_ms": round((time.perf_counter() - began) * 1000, 2),
                    "bot": self.ctx.slug,
                },
            )
            return [body]
        finally:
            reset_request_id(token)

    def _route(self, environ: dict, request_id: str) -> Response:
        method, path = environ.get("REQUEST_METHOD", "GET"), environ.get("PATH_INFO", "/")
        routes = {"/health": ("GET", self.health), "/chat": ("POST", self.chat), "/metrics": ("GET", self.metrics)}
        if path not in routes:
            return _json_error(404, "not_found", f"no route {path}; try /health, /chat or /metrics")
        allowed, view = routes[path]
        if method != allowed and not (allowed == "GET" and method == "HEAD"):
            return _json_error(405, "method_not_allowed", f"{path} takes {allowed}")
        return view(environ, request_id)

    def health(self, environ: dict, request_id: str) -> Response:
        status = "stopping" if self.draining.is_set() else "ok"
        body = {
            "status": status,
            "bot_id": self.ctx.bot_id,
            "bot": self.ctx.slug,
            "model": self.ctx.model,
            "backend": self.backend_name,
            "pid": os.getpid(),
            "uptime_seconds": round(time.monotonic() - self.started, 3),
        }
        return (503 if self.draining.is_set() else 200), body, JSON

    def chat(self, environ: dict, request_id: str) -> Response:
        body = self._read_body(environ)
        if isinstance(body, tuple):
            return body
        try:
            message, conversation = parse_chat(body)
        except BadRequest as exc:
            return _json_error(400, "bad_request", str(exc))
        status, payload = handle_chat(self.ctx, message, conversation, request_id)
        return status, payload, JSON

    def metrics(self, environ: dict, request_id: str) -> Response:
        from ops.metrics import update_pool_gauges

        update_pool_gauges()
        return 200, generate_latest(REGISTRY), CONTENT_TYPE_LATEST

    @staticmethod
    def _read_body(environ: dict) -> bytes | Response:
        too_large = _json_error(413, "payload_too_large", f"the body is limited to {MAX_BODY} bytes")
        raw_length = environ.get("CONTENT_LENGTH") or ""
        try:
            length = int(raw_length) if raw_length else None
        except ValueError:
            return _json_error(400, "bad_request", "invalid Content-Length")
        if length is not None and length > MAX_BODY:
            return too_large
        # Read one byte past the limit so a body without a length is caught too.
        body = environ["wsgi.input"].read(MAX_BODY + 1 if length is None else length)
        return too_large if len(body) > MAX_BODY else body
