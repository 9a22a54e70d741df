"""The web's gunicorn worker: uvicorn's, with our choices (imported by gunicorn's master,
so it loads no Django)."""

from __future__ import annotations

from uvicorn_worker import UvicornWorker


class Worker(UvicornWorker):
    # asyncio (no uvloop to install), httptools' parser, no Server banner; uvicorn's own
    # text access lines off: deia.asgi.AccessLog writes JSON ones when asked.
    # Django has no lifespan protocol. Forwarded headers are judged once, by Django
    # (deia/proxies.py, TRUSTED_PROXIES), not a second time by uvicorn.
    CONFIG_KWARGS = {
        "loop": "asyncio",
        "http": "httptools",
        "access_log": False,
        "server_header": False,
        "lifespan": "off",
        "proxy_headers": False,
    }
