from __future__ import annotations

import logging
import time

from django.utils.functional import empty

from ops.logs import REQUEST_ID_HEADER, new_request_id, reset_request_id, set_request_id

log = logging.getLogger("deia.request")


def _user_name(request) -> str | None:
    user = getattr(request, "user", None)
    # A lazy user nobody looked at stays unloaded: logging must not cost a session query.
    if user is None or getattr(user, "_wrapped", None) is empty:
        return None
    return user.get_username() if user.is_authenticated else None


class RequestLogMiddleware:
    """One log line per request, and an X-Request-ID on every response.

    The line holds method, path (never the query string, which may carry a token),
    status, duration_ms, request_id and user; no header or body is logged.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        request_id = new_request_id(request.headers.get(REQUEST_ID_HEADER))
        request.request_id = request_id
        token = set_request_id(request_id)
        started = time.perf_counter()
        try:
            response = self.get_response(request)
            response[REQUEST_ID_HEADER] = request_id
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
        finally:
            reset_request_id(token)
