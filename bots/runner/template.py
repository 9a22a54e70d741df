"""The runner template ("zygote"): one pre-loaded process per host that forks bot runners.

`manage.py runtemplate` imports Django, the runner and its libraries once, freezes its heap
(gc.freeze, so the children share those pages copy-on-write), and answers on a Unix socket
under DEIA_VAR_DIR (bots.lifecycle.template is the client, in the bots worker). A `fork`
request makes a child that, before anything else, takes its own title ("deia-runner <tag>",
how the lifecycle recognises it: its environment is the template's), leaves the template's
session, drops what it inherited (the listening socket, the lock, database connections),
writes to the bot's log and runs the same code as `manage.py runbot` (bots.runner.server.run),
given its bot's row in the request instead of reading it.

The template holds no database connection and no thread, so a fork copies nothing that
another process uses; a child cannot be killed by the template's death (another session,
another process group, no controlling terminal) and the template reaps its children,
noting each exit status where the lifecycle reads it (bots.lifecycle.process.exits_dir).

Only one template runs per socket: it holds an exclusive lock on `<socket>.lock` for its life.
A request whose fingerprint (code and settings, bots.lifecycle.template.fingerprint) is not
the template's own is answered "stale" and the template exits: the worker starts a new one.

Protocol: one JSON line each way per connection. {"op": "ping"} -> {"pid", "fingerprint"};
{"op": "fork", "fingerprint", "bot_id", "port", "tag", "secret", "generation", "log", "bot": {the
RUNNER_BOT_FIELDS of its row}} -> {"pid", "log_offset"}
or {"error": "stale" | "<why>"}.
"""

from __future__ import annotations

import contextlib
import fcntl
import gc
import importlib
import json
import logging
import os
import random
import signal
import socket
import sys
import time
import traceback
from pathlib import Path

import uvicorn
from django.db import connections
from setproctitle import setproctitle

from bots.lifecycle.process import (
    GENERATION_ENV,
    RUNNER_BOT_FIELDS,
    RUNNER_TITLE,
    SECRET_ENV,
    TAG_VAR,
    TEMPLATE_TITLE,
    reap_children,
)
from bots.lifecycle.template import FINGERPRINT_ENV
from bots.llm.http import tls_context
from bots.models import Bot
from bots.runner.server import run
from deia.adapters.django import forget_inherited_connections

log = logging.getLogger("deia.runner.template")

LOCK_WAIT = 5.0  # a template being replaced may still hold the lock this long
REQUEST_TIMEOUT = 2.0
REQUEST_LIMIT = 4 * 1024 * 1024  # a fork request carries the bot's system prompt

# What a runner imports only once it serves (uvicorn loads its protocol and loop by name).
WARM_MODULES = (
    "uvicorn.protocols.http.httptools_impl",
    "uvicorn.protocols.http.h11_impl",
    "uvicorn.loops.asyncio",
    "uvicorn.lifespan.off",
    "asyncio",
    "httptools",
    "django.db.backends.postgresql.base",
    "psycopg_pool",
    "httpcore",  # httpx imports it with its first client, trio and all
)


class TemplateBusy(Exception):
    """Another template holds this socket's lock."""


def _lock(path: Path) -> int:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    deadline = time.monotonic() + LOCK_WAIT
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return fd
        except BlockingIOError:
            if time.monotonic() >= deadline:
                os.close(fd)
                raise TemplateBusy(str(path)) from None
            time.sleep(0.02)


async def _no_app(scope, receive, send) -> None:  # pragma: no cover - never called
    raise NotImplementedError


def _warm() -> None:
    """Do once here what every runner would do at start: import, resolve, load."""
    for name in WARM_MODULES:
        with contextlib.suppress(ImportError):
            importlib.import_module(name)
    for alias in connections:
        connections[alias]  # the backend module and its wrapper class, not a connection
    tls_context()  # the CA bundle, parsed
    # The ORM's first compile of the runner's queries (class checks, caches), without a connection.
    for query in (Bot.objects.filter(pk=0), Bot.objects.filter(slug="")):
        query.query.get_compiler("default").as_sql()
    # What uvicorn imports by name when a server starts (protocols, loop, lifespan).
    uvicorn.Config(_no_app, lifespan="off", http="httptools", loop="asyncio", log_config=None).load()


class Template:
    def __init__(self, path: Path, tag: str, fingerprint: str) -> None:
        self.path, self.tag, self.fingerprint = path, tag, fingerprint
        self.lock_fd = -1
        self.listener: socket.socket | None = None

    def open(self) -> None:
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.lock_fd = _lock(self.path.with_suffix(".lock"))
        # We hold the lock: a socket file left there is a dead template's.
        self.path.unlink(missing_ok=True)
        setproctitle(f"{TEMPLATE_TITLE} {self.tag}")
        _warm()
        signal.signal(signal.SIGCHLD, lambda *_: reap_children())
        sys.stdout.flush()
        sys.stderr.flush()
        gc.collect()
        gc.freeze()  # what is loaded now stays shared with every child: no collection touches it
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(str(self.path))
        os.chmod(self.path, 0o600)
        listener.listen(64)
        self.listener = listener
        log.info("runner template ready", extra={"socket": str(self.path), "fingerprint": self.fingerprint})

    def serve(self) -> int:
        """Answer requests until a stale one comes (exit 0) or a signal ends the process."""
        assert self.listener is not None
        while True:
            conn, _ = self.listener.accept()
            with conn:
                conn.settimeout(REQUEST_TIMEOUT)
                try:
                    request = json.loads(_read_line(conn) or b"{}")
                except (OSError, ValueError):
                    continue
                reply = self.handle(request, conn)
                with contextlib.suppress(OSError):
                    conn.sendall(json.dumps(reply).encode() + b"\n")
            if reply.get("error") == "stale":
                log.info("runner template replaced", extra={"fingerprint": self.fingerprint})
                self.close()
                return 0

    def close(self) -> None:
        if self.listener is not None:
            self.listener.close()
            with contextlib.suppress(OSError):
                # Only if it is still ours (a successor waits for our lock before binding).
                self.path.unlink()
        if self.lock_fd >= 0:
            os.close(self.lock_fd)
            self.lock_fd = -1

    def handle(self, request: dict, conn: socket.socket) -> dict:
        op = request.get("op")
        if op not in ("ping", "fork"):
            return {"error": f"unknown op {op!r}"}
        # A fork must match; a ping only if it names a fingerprint (the worker's supervision does).
        asked = request.get("fingerprint")
        if (op == "fork" or asked is not None) and asked != self.fingerprint:
            return {"error": "stale", "pid": os.getpid()}
        if op == "ping":
            return {"pid": os.getpid(), "fingerprint": self.fingerprint}
        try:
            log_path = Path(request["log"])
            bot_id, port = int(request["bot_id"]), int(request["port"])
            tag, secret = str(request["tag"]), str(request["secret"])
            generation = int(request.get("generation") or 0)
            facts = {field: str(request["bot"][field]) for field in RUNNER_BOT_FIELDS}
        except (KeyError, TypeError, ValueError) as exc:
            return {"error": f"bad fork request: {exc}"}
        log_path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        offset = os.lseek(fd, 0, os.SEEK_END)
        sys.stdout.flush()
        sys.stderr.flush()
        marked, mark = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(marked)
            self._child(conn, fd, mark, bot_id, port, tag, secret, generation, facts)  # never returns
        os.close(fd)
        os.close(mark)
        # The pid goes back once the child carries its runner's title (or died trying): until
        # then it has the template's, and a pass looking for templates would count it.
        os.read(marked, 1)
        os.close(marked)
        return {"pid": pid, "log_offset": offset}

    def _child(
        self,
        conn: socket.socket,
        log_fd: int,
        mark: int,
        bot_id: int,
        port: int,
        tag: str,
        secret: str,
        generation: int,
        facts: dict[str, str],
    ) -> None:
        code = 1
        try:
            # First the mark the lifecycle recognises us by, then out of the template's session:
            # its death or its group's signals never reach us, and our group is ours to kill.
            setproctitle(f"{RUNNER_TITLE} {tag} --port {port}")
            os.write(mark, b"1")  # the parent answers the fork request with our pid now
            os.close(mark)
            os.setsid()
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)
            conn.close()
            if self.listener is not None:
                self.listener.close()
            os.close(self.lock_fd)
            null = os.open(os.devnull, os.O_RDONLY)
            os.dup2(null, 0)
            os.dup2(log_fd, 1)
            os.dup2(log_fd, 2)
            os.close(null)
            os.close(log_fd)
            forget_inherited_connections()
            random.seed()  # os.fork re-seeds it already; said here so that no change loses it
            os.environ[TAG_VAR] = tag
            os.environ[SECRET_ENV] = secret  # popped by the runner at once, as from exec
            os.environ[GENERATION_ENV] = str(generation)
            code = run(str(bot_id), port, facts)
        except BaseException:  # noqa: BLE001 - a child must never return into the template's loop
            traceback.print_exc()
        finally:
            with contextlib.suppress(Exception):
                sys.stdout.flush()
                sys.stderr.flush()
            os._exit(code)


def _read_line(conn: socket.socket, limit: int = REQUEST_LIMIT) -> bytes:
    data = b""
    while not data.endswith(b"\n") and len(data) < limit:
        chunk = conn.recv(4096)
        if not chunk:
            break
        data += chunk
    return data


def serve(path: Path, tag: str) -> int:
    """`manage.py runtemplate`: serve until replaced or signalled; 0 if another template runs."""
    template = Template(path, tag, os.environ.get(FINGERPRINT_ENV, ""))
    try:
        template.open()
    except TemplateBusy:
        sys.stderr.write(f"another runner template holds {path.with_suffix('.lock')}\n")
        return 0
    try:
        return template.serve()
    finally:
        template.close()
