"""The web's ASGI application for the API benchmark: the real one, plus the bare view
(bench/bare.py) at /bench/bare on the same kind of thread pool the control plane uses."""

from __future__ import annotations

from a2wsgi import WSGIMiddleware
from django.conf import settings

import deia.asgi

deia_application = deia.asgi.application  # imported first: it loads the settings and Django

from bench import bare  # noqa: E402

BARE_PATH = "/bench/bare"
bare_application = WSGIMiddleware(bare.application, workers=settings.WEB_SYNC_THREADS)


async def application(scope, receive, send) -> None:
    if scope["type"] == "http" and scope.get("path") == BARE_PATH:
        return await bare_application(scope, receive, send)
    return await deia_application(scope, receive, send)
