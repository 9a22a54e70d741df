"""The web's gunicorn worker: uvicorn's, with our choices (imported by gunicorn's master,
so it loads no Django)."""

from __future__ import annotations

import socket
import sys

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

    def run(self) -> None:
        # The event loop hands each request to a thread and back: with the default 5 ms
        # GIL switch interval each hand-off could wait that long behind a busy thread.
        sys.setswitchinterval(0.0005)
        # gunicorn's listeners are made with protocol 0, so asyncio leaves Nagle on for
        # their connections and every keep-alive answer written in two parts waits 40 ms for
        # a delayed ACK. Accepted connections inherit TCP_NODELAY from the listener.
        for listener in self.sockets:
            if listener.family in (socket.AF_INET, socket.AF_INET6):
                listener.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        super().run()
