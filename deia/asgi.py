"""The web's ASGI application (gunicorn with uvicorn workers, deploy/gunicorn.conf.py).

Django serves everything: the chat path as async views, the rest as before. With
GUNICORN_ACCESSLOG set, `AccessLog` writes one JSON line per request on gunicorn's access
log, requests refused before Django included (quotes in a path or user agent stay data).
"""

from __future__ import annotations

import json
import logging
import os
import time
from datetime import UTC, datetime

from deia.config import import_settings_or_exit, owner_only_files

owner_only_files()
import_settings_or_exit()

from django.core.asgi import get_asgi_application  # noqa: E402 - settings first, for a one-line error

access_log = logging.getLogger("gunicorn.access")


class AccessLog:
    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started = time.perf_counter()
        seen: dict = {"status": None, "bytes": 0, "request_id": None}

        async def sending(message) -> None:
            if message["type"] == "http.response.start":
                seen["status"] = message["status"]
                for name, value in message.get("headers") or []:
                    if name.lower() == b"x-request-id":
                        seen["request_id"] = value.decode("latin-1")
            elif message["type"] == "http.response.body":
                seen["bytes"] += len(message.get("body", b""))
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            headers = {name.lower(): value for name, value in scope.get("headers") or []}
            line = {
                "time": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
                "level": "INFO",
                "logger": "gunicorn.access",
                "method": scope.get("method"),
                "path": scope.get("path"),
                "status": seen["status"],
                "duration_ms": round((time.perf_counter() - started) * 1000, 2),
                "bytes": seen["bytes"],
                "request_id": seen["request_id"],
                "remote": (scope.get("client") or (None,))[0],
                "user_agent": headers.get(b"user-agent", b"").decode("latin-1") or None,
            }
            access_log.info(json.dumps(line))


application = get_asgi_application()
if os.environ.get("GUNICORN_ACCESSLOG"):
    application = AccessLog(application)
