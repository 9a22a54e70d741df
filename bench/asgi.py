"""The web's ASGI application for the benchmarks: the real one, plus the floors: the bare
API view (bench/bare.py) at /bench/bare on the same kind of thread pool the control plane
uses, and the bare chat relay (bench/bare_chat.py) at /bench/bare-chat/<id>."""

from __future__ import annotations

from a2wsgi import WSGIMiddleware
from django.conf import settings

import deia.asgi

deia_application = deia.asgi.application  # imported first: it loads the settings and Django

from bench import bare, bare_chat  # noqa: E402

BARE_PATH = "/bench/bare"
bare_application = WSGIMiddleware(bare.application, workers=settings.WEB_SYNC_THREADS)


async def application(scope, receive, send) -> None:
    if scope["type"] == "http" and scope.get("path") == BARE_PATH:
        return await bare_application(scope, receive, send)
    if scope["type"] == "http" and scope.get("path", "").startswith(bare_chat.PREFIX):
        return await bare_chat.application(scope, receive, send)
    return await deia_application(scope, receive, send)
