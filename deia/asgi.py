"""The web's ASGI application (gunicorn with uvicorn workers, deploy/gunicorn.conf.py).

Two doors into the same Django:
- the chat path (/api/bots/<id>/messages) goes through Django's ASGI handler, as an async
  view: a chat waiting on its bot holds no thread (and none is started for it: the view's
  synchronous step runs in threads it keeps, deia.adapters.django's handler);
- everything else (admin, API, /health, /metrics) goes through Django's WSGI handler on a
  small pool of threads (a2wsgi), one hand-off per request: a synchronous view under the
  ASGI handler costs a thread of its own and several hand-offs, about three times the CPU.
With GUNICORN_ACCESSLOG set, `AccessLog` writes one JSON line per request on gunicorn's access
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

import django  # noqa: E402
from a2wsgi import WSGIMiddleware  # noqa: E402
from django.conf import settings  # noqa: E402
from django.core.wsgi import get_wsgi_application  # noqa: E402 - settings first, for a one-line error

django.setup(set_prefix=False)

from deia import inline_middleware  # noqa: E402 - needs the apps loaded
from deia.adapters.django import ASGIHandlerWithoutThreadPerRequest  # noqa: E402
from deia.doors import CHAT_PATH  # noqa: E402

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


class TwoDoors:
    def __init__(self) -> None:
        # No thread per request: the chat view keeps its own threads (bots.chat_api); and
        # Django's Security, CSRF and X-Frame-Options hooks on the event loop, not in threads.
        self.chats = ASGIHandlerWithoutThreadPerRequest(substitutes=inline_middleware.on_the_loop())
        # Threads for the synchronous requests of this worker; the chat path's admission
        # (bots.chat_api) keeps to the rest of the database pool.
        self.control_plane = WSGIMiddleware(get_wsgi_application(), workers=settings.WEB_SYNC_THREADS)

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "http" and not CHAT_PATH.match(scope.get("path", "")):
            return await self.control_plane(scope, receive, send)
        return await self.chats(scope, receive, send)


application = TwoDoors()
if os.environ.get("GUNICORN_ACCESSLOG"):
    application = AccessLog(application)
