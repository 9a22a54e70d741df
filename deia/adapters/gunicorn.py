"""The adapter for gunicorn and its uvicorn worker (both named in deploy/gunicorn.conf.py).

Imported by gunicorn's master, so it loads no Django. Relied on, beyond their documented
settings (tests/adapters/test_gunicorn.py pins each against the installed versions):
- `Logger`: gunicorn's glogging.Logger keeps its two loggers in `error_log` and
  `access_log` once `setup(cfg)` has run. Its own lines (start-up, worker timeouts and
  crashes, its access log) get the syslog priority prefix the app's lines carry when
  LOG_SYSLOG_PREFIX is on (deia.logs), so a worker timeout reaches the journal at err.
- `Worker`: uvicorn-worker's UvicornWorker takes uvicorn's settings from `CONFIG_KWARGS`;
  gunicorn's listeners (`self.sockets`) pass `family` and `setsockopt` on to the socket.
"""

from __future__ import annotations

import logging
import socket
import sys

from gunicorn import glogging
from uvicorn_worker import UvicornWorker

from deia.config import ConfigError, Env, fail
from deia.logs import syslog_priority


class _Prefixed(logging.Formatter):
    def __init__(self, inner: logging.Formatter | None) -> None:
        super().__init__()
        self.inner = inner or logging.Formatter()

    def format(self, record: logging.LogRecord) -> str:
        return f"<{syslog_priority(record.levelno)}>{self.inner.format(record)}"


class Logger(glogging.Logger):
    def setup(self, cfg) -> None:
        super().setup(cfg)
        try:
            prefix = Env().bool("LOG_SYSLOG_PREFIX", False)
        except ConfigError as err:
            fail(err)
        if prefix:
            for log in (self.error_log, self.access_log):
                for handler in log.handlers:
                    handler.setFormatter(_Prefixed(handler.formatter))


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
