"""Middleware of the web process. Every one here works in an async chain (ASGI) without
pinning a request to a thread, so a chat waiting on its bot holds nothing.

- RequestLogMiddleware: the request id and one JSON line per request.
- StaticFilesMiddleware, GZipMiddleware: WhiteNoise (deia/adapters/whitenoise.py) and
  Django's gzip, made async-capable.
- ApiJsonErrorsMiddleware: every error under /api/ is JSON {"error": ..., "detail": ...},
  whoever answered it. DRF shapes the errors of its own views; this catches the rest: the
  URL resolver's 404 for a path no route matches (/api/bots/1.5, /api/nope), a 405 from a
  view outside DRF (the schema view), Django's 500 page.
"""

from __future__ import annotations

import json
import logging
import time
from http import HTTPStatus

from django.http import HttpRequest, HttpResponseBase, JsonResponse
from django.middleware.gzip import GZipMiddleware as DjangoGZipMiddleware

from deia.adapters.django import Inline, is_loaded
from deia.adapters.whitenoise import StaticFilesMiddleware as StaticFilesMiddleware  # settings name it here
from deia.logs import REQUEST_ID_HEADER, new_request_id, reset_request_id, set_request_id
from deia.middleware_base import SyncAndAsyncMiddleware

log = logging.getLogger("deia.request")

SSE_CONTENT_TYPE = "text/event-stream"


def _user_name(request) -> str | None:
    user = getattr(request, "user", None)
    # A lazy user nobody looked at stays unloaded: logging must not cost a session query.
    if user is None or not is_loaded(user):
        return None
    return user.get_username() if user.is_authenticated else None


class RequestLogMiddleware(SyncAndAsyncMiddleware):
    """One log line per request, and an X-Request-ID on every response.

    The line holds method, path (never the query string, which may carry a token),
    status, duration_ms, request_id and user; no header or body is logged. A streamed
    response is logged when its headers go out.
    """

    def __call__(self, request):
        if self.is_async:
            return self._acall(request)
        token, started = self._begin(request)
        try:
            return self._end(request, self.get_response(request), started)
        finally:
            reset_request_id(token)

    async def _acall(self, request):
        token, started = self._begin(request)
        try:
            return self._end(request, await self.get_response(request), started)
        finally:
            reset_request_id(token)

    @staticmethod
    def _begin(request):
        request_id = new_request_id(request.headers.get(REQUEST_ID_HEADER))
        request.request_id = request_id
        return set_request_id(request_id), time.perf_counter()

    @staticmethod
    def _end(request, response, started: float):
        response[REQUEST_ID_HEADER] = request.request_id
        duration_ms = round((time.perf_counter() - started) * 1000, 2)
        status = response.status_code
        log.log(
            logging.ERROR if status >= 500 else logging.INFO,
            "%s %s %s %.1fms",
            request.method,
            request.path,
            status,
            duration_ms,
            extra={
                "method": request.method,
                "path": request.path,
                "status": status,
                "duration_ms": duration_ms,
                "user": _user_name(request),
            },
        )
        return response


class GZipMiddleware(Inline, DjangoGZipMiddleware):
    """Django's gzip, except for server-sent events: gzip would hold each chunk of a
    streamed chat back until it had enough bytes to compress."""

    def process_response(self, request, response):
        if response.get("Content-Type", "").startswith(SSE_CONTENT_TYPE):
            return response
        return super().process_response(request, response)


API_PREFIX = "/api/"
# Headers of the original error that still hold for the JSON one.
KEPT_HEADERS = ("Allow", "Retry-After", "WWW-Authenticate", "X-Request-ID")


def json_error(status: int, detail: str | None = None) -> JsonResponse:
    phrase = HTTPStatus(status).phrase
    code = phrase.lower().replace(" ", "_").replace("-", "_")
    return JsonResponse({"error": code, "detail": detail or f"{phrase.capitalize()}."}, status=status)


def _media_type(response: HttpResponseBase) -> str:
    return response.get("Content-Type", "").split(";")[0].strip()


def _needs_json(request: HttpRequest, response: HttpResponseBase) -> bool:
    return (
        response.status_code >= 400
        and request.path.startswith(API_PREFIX)
        and not response.streaming
        and _media_type(response) != "application/json"
    )


def _drf_error(response: HttpResponseBase) -> dict | None:
    """A DRF error already shaped {"error", "detail"} but rendered with a JSON-based media
    type of the view's own (the schema view's application/vnd.oai.openapi+json)."""
    if not _media_type(response).endswith("+json"):
        return None
    try:
        body = json.loads(response.content)
    except ValueError:
        return None
    return body if isinstance(body, dict) and {"error", "detail"} <= set(body) else None


def _as_json(response: HttpResponseBase) -> JsonResponse:
    shaped = _drf_error(response)
    replacement = JsonResponse(shaped, status=response.status_code) if shaped else json_error(response.status_code)
    for header in KEPT_HEADERS:
        if header in response:
            replacement[header] = response[header]
    return replacement


class ApiJsonErrorsMiddleware(SyncAndAsyncMiddleware):
    def __call__(self, request: HttpRequest):
        if self.is_async:
            return self.__acall__(request)
        response = self.get_response(request)
        return _as_json(response) if _needs_json(request, response) else response

    async def __acall__(self, request: HttpRequest):
        response = await self.get_response(request)
        return _as_json(response) if _needs_json(request, response) else response
