"""Every error under /api/ is JSON {"error": ..., "detail": ...}, whoever answered it.

DRF shapes the errors of its own views; this catches the rest: the URL resolver's 404
for a path no route matches (/api/bots/1.5, /api/nope), a 405 from a view outside DRF
(the schema view), Django's 500 page. Both sync and async, so an async view (the chat
path) is not pushed onto a thread by it.
"""

from __future__ import annotations

import json
from http import HTTPStatus

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.http import HttpRequest, HttpResponseBase, JsonResponse

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


class ApiJsonErrorsMiddleware:
    sync_capable = True
    async_capable = True

    def __init__(self, get_response):
        self.get_response = get_response
        if iscoroutinefunction(get_response):
            markcoroutinefunction(self)

    def __call__(self, request: HttpRequest):
        if iscoroutinefunction(self):
            return self.__acall__(request)
        response = self.get_response(request)
        return _as_json(response) if _needs_json(request, response) else response

    async def __acall__(self, request: HttpRequest):
        response = await self.get_response(request)
        return _as_json(response) if _needs_json(request, response) else response
