"""The adapter for gunicorn and its uvicorn worker (both named in deploy/gunicorn.conf.py).

Imported by gunicorn's master, so it loads no Django. Relied on, beyond their documented
settings (tests/adapters/test_gunicorn.py pins each against the installed versions):
- `Logger`: gunicorn's glogging.Logger keeps its two loggers in `error_log` and
  `access_log` once `setup(cfg)` has run. Its own lines (start-up, worker timeouts and
  crashes, its access log) get the syslog priority prefix the app's lines carry when
  LOG_SYSLOG_PREFIX is on (deia.logs), so a worker timeout reaches the journal at err.
- `Worker`: uvicorn-worker's UvicornWorker takes uvicorn's settings from `CONFIG_KWARGS`;
  gunicorn's listeners (`self.sockets`) pass `family` and `setsockopt` on to the socket.
  Its `_serve` is uvicorn-worker's own (a uvicorn Server on gunicorn's sockets) with one
  change: a chat worker serves no socket of gunicorn's and adopts connections instead.
- `HttpProtocol`: uvicorn's httptools protocol, whose `data_received` gets each read, the
  first one first, and whose constructor takes config, server_state and app_state.

Chats in workers of their own, on the same address: gunicorn's master gives each worker a
role as it forks it (`assign_role`, gunicorn's pre_fork hook): GUNICORN_CHAT_WORKERS of
them take chats, the others everything else. Only the others accept connections. When the
first bytes of a connection are a request for the chat path (deia.doors), the worker passes
the connection's socket and those bytes on to the chat workers over a Unix socket pair
the master made before forking (SCM_RIGHTS), and closes its own copy: no byte is relayed,
and whichever chat worker is free first takes it. The connection then stays there, its
later requests too. So a burst of chats keeps the chat workers' event loops and CPU share
busy, and the admin, the API, /health and /metrics are answered by processes that are not.
"""

from __future__ import annotations

import array
import asyncio
import logging
import os
import socket
import sys
from collections import deque

from gunicorn import glogging
from gunicorn.arbiter import Arbiter
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import Server
from uvicorn_worker import UvicornWorker

from deia.config import ConfigError, Env, fail
from deia.doors import is_chat_request
from deia.logs import syslog_priority

CHAT, CONTROL = "chat", "control"
# The most a connection's first read may hold to be handed over (one message on the
# channel); a bigger first read is served where it was read.
HANDOVER_MAX = 64 * 1024
RIGHTS_SPACE = socket.CMSG_SPACE(array.array("i").itemsize)  # one descriptor a message
# (sendmsg and recvmsg, not socket.send_fds and recv_fds: Python 3.11's drop their flags,
# and without MSG_DONTWAIT a chat worker woken with the others blocks on a taken message.)
log = logging.getLogger(__name__)


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


class Handover:
    """The Unix socket pair chat connections go to the chat workers by: made in the master,
    before the first fork, so every worker has both ends. Messages are atomic
    (SOCK_SEQPACKET) and each goes to one reader."""

    def __init__(self, nice: int = 0) -> None:
        self.nice = nice
        self.sending, self.receiving = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        # Room for a burst's sockets in flight (capped by net.core.wmem_max); beyond it,
        # connections wait in this worker's queue until the chat workers catch up.
        self.sending.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 << 20)
        self.waiting: deque[tuple[HttpProtocol, bytes]] = deque()
        self.writer_on = False
        self.adopting: set[asyncio.Task] = set()

    def pass_on(self, protocol: HttpProtocol, data: bytes) -> None:
        protocol.transport.pause_reading()
        self.waiting.append((protocol, data))
        self.flush()

    def flush(self) -> None:
        while self.waiting:
            protocol, data = self.waiting[0]
            transport = protocol.transport
            if transport.is_closing():  # the client went away meanwhile
                self.waiting.popleft()
                continue
            try:
                fd = transport.get_extra_info("socket").fileno()
                rights = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [fd]))]
                self.sending.sendmsg([data], rights, socket.MSG_DONTWAIT)
            except BlockingIOError:
                # The chat workers are behind: send the rest when there is room.
                if not self.writer_on:
                    asyncio.get_running_loop().add_writer(self.sending, self.flush)
                    self.writer_on = True
                return
            except OSError as err:
                self.waiting.popleft()
                log.warning("chat connection served here, it could not be handed over: %s", err)
                protocol.serve_here(data)
                continue
            self.waiting.popleft()
            # Our copy only: the chat worker's keeps the connection open.
            transport.close()
        if self.writer_on:
            asyncio.get_running_loop().remove_writer(self.sending)
            self.writer_on = False

    def take_back(self, protocol: HttpProtocol) -> bytes | None:
        """The bytes of `protocol`'s connection if it is still waiting here (not handed over)."""
        for entry in self.waiting:
            if entry[0] is protocol:
                self.waiting.remove(entry)
                return entry[1]
        return None

    def adopt(self, server: Server) -> None:
        """In a chat worker: serve the connections handed over, with `server`'s protocol and
        state (so a graceful shutdown waits for their chats), until stop_adopting."""
        loop = asyncio.get_running_loop()
        loop.add_reader(self.receiving, self._take, server, 64)

    async def stop_adopting(self, server: Server) -> None:
        """The chat worker is shutting down (told to, or recycled by max_requests): it takes
        no more connections but those already on the channel, which it serves as it ends."""
        asyncio.get_running_loop().remove_reader(self.receiving)
        self._take(server, None)
        await asyncio.gather(*self.adopting, return_exceptions=True)

    def _take(self, server: Server, most: int | None) -> None:
        loop = asyncio.get_running_loop()
        config = server.config
        taken = 0
        while most is None or taken < most:
            try:
                data, rights, flags, _ = self.receiving.recvmsg(HANDOVER_MAX, RIGHTS_SPACE, socket.MSG_DONTWAIT)
            except BlockingIOError:
                return
            taken += 1
            if flags & socket.MSG_CTRUNC:  # out of file descriptors: the kernel dropped it
                log.error("a chat connection handed over was lost: no file descriptor left for it")
            fds = array.array("i")
            for level, kind, payload in rights:
                if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                    fds.frombytes(payload[: len(payload) - len(payload) % fds.itemsize])
            for fd in fds:
                connection = socket.socket(fileno=fd)
                connection.setblocking(False)

                def protocol(data: bytes = data) -> HttpProtocol:
                    return config.http_protocol_class(
                        config=config,
                        server_state=server.server_state,
                        app_state=server.lifespan.state,
                        handed_over=data,
                    )

                adopting = loop.create_task(loop.connect_accepted_socket(protocol, connection))
                self.adopting.add(adopting)
                adopting.add_done_callback(self._adopted)

    def _adopted(self, task: asyncio.Task) -> None:
        self.adopting.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.warning("a chat connection handed over could not be served: %s", task.exception())


# Made by the master (open_handover) when chats have workers of their own; forked with the workers.
handover: Handover | None = None


def open_handover(nice: int = 0) -> None:
    """In the master: chats get workers of their own, which add `nice` to their niceness."""
    global handover
    if handover is None:
        handover = Handover(nice)


def assign_role(arbiter: Arbiter, worker, chat_workers: int) -> None:
    """gunicorn's pre_fork, in the master: the new worker takes chats while fewer than
    `chat_workers` live workers of the current generation do (a dead chat worker's
    replacement is a chat worker; after a reload the old workers, about to go, do not count)."""
    generation = getattr(arbiter, "deia_generation", 0)
    chats = sum(
        1 for other in arbiter.WORKERS.values() if other.age > generation and getattr(other, "role", CONTROL) == CHAT
    )
    worker.role = CHAT if handover is not None and chats < chat_workers else CONTROL


def reloading(arbiter: Arbiter) -> None:
    """gunicorn's on_reload, in the master, before it forks a new set of workers and stops
    the old ones: the new set gets chat workers of its own."""
    arbiter.deia_generation = arbiter.worker_age


class HttpProtocol(HttpToolsProtocol):
    """uvicorn's protocol; in a worker that hands chats over, it looks at a connection's first
    read and passes a chat's connection on; in a chat worker, it starts with the bytes the
    other worker read."""

    hands_over = False  # set in the workers that accept connections, when chat workers exist

    def __init__(self, *args, handed_over: bytes = b"", **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.handed_over = handed_over
        self.placed = bool(handed_over) or not self.hands_over

    def connection_made(self, transport) -> None:
        super().connection_made(transport)
        if self.handed_over:
            # Before the transport's first read of its own: the bytes stay in order.
            data, self.handed_over = self.handed_over, b""
            super().data_received(data)

    def data_received(self, data: bytes) -> None:
        if not self.placed:
            self.placed = True
            if handover is not None and len(data) <= HANDOVER_MAX and is_chat_request(data):
                handover.pass_on(self, data)
                return
        super().data_received(data)

    def serve_here(self, data: bytes) -> None:
        self.transport.resume_reading()
        super().data_received(data)

    def shutdown(self) -> None:
        # The worker is shutting down with this connection still waiting for the chat
        # workers: its request was read, so it is answered here (and the connection closed).
        if handover is not None and (data := handover.take_back(self)) is not None:
            self.serve_here(data)
        super().shutdown()


class ChatServer(Server):
    """A chat worker's uvicorn server: it stops taking handed-over connections when it
    starts shutting down, however that starts (uvicorn's max-requests exit sets no
    should_exit), and serves those already on the channel."""

    async def shutdown(self, sockets=None) -> None:
        if handover is not None:
            await handover.stop_adopting(self)
        await super().shutdown(sockets)


class Worker(UvicornWorker):
    # asyncio (no uvloop to install), httptools' parser, no Server banner; uvicorn's own
    # text access lines off: deia.asgi.AccessLog writes JSON ones when asked.
    # Django has no lifespan protocol. Forwarded headers are judged once, by Django
    # (deia/proxies.py, TRUSTED_PROXIES), not a second time by uvicorn.
    CONFIG_KWARGS = {
        "loop": "asyncio",
        "access_log": False,
        "server_header": False,
        "lifespan": "off",
        "proxy_headers": False,
        "http": "deia.adapters.gunicorn:HttpProtocol",
    }
    role = CONTROL  # the master's assign_role sets it before the fork

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
        HttpProtocol.hands_over = handover is not None and self.role == CONTROL
        super().run()

    async def _serve(self) -> None:
        # uvicorn-worker's _serve, but a chat worker adopts handed-over connections instead
        # of accepting on gunicorn's sockets.
        self.config.app = self.wsgi
        chats = handover is not None and self.role == CHAT
        server = ChatServer(config=self.config) if chats else Server(config=self.config)
        self._install_sigquit_handler()
        sockets = self.sockets
        if chats:
            self.log.info("worker %s takes chats", self.pid)
            if handover.nice:
                os.nice(handover.nice)
            sockets = []
            self.config.load()
            handover.adopt(server)
        await server.serve(sockets=sockets)
        if not server.started:
            sys.exit(Arbiter.WORKER_BOOT_ERROR)
