from __future__ import annotations

import logging
import time

from ops.logs import REQUEST_ID_HEADER, new_request_id, reset_request_id, set_request_id

log = logging.getLogger("deia.request")


class RequestLogMiddleware:
    """One log line per request, and an X-Request-ID on every response."""

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
            user = getattr(request, "user", None)
            log.info(
                "request",
                extra={
                    "method": request.method,
                    "path": request.path,
                    "status": response.status_code,
                    "duration_ms": round((time.perf_counter() - started) * 1000, 2),
                    "user": user.get_username() if user is not None and user.is_authenticated else None,
                },
            )
            return response
        finally:
            reset_request_id(token)
