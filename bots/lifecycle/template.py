"""The bots worker's side of the host's runner template (the template itself: bots/runner/template.py).

A start asks the template to fork the runner (`spawn`); when no template answers, or it
cannot fork, the runner is started by exec as before (process.spawn_runner) and the start
is counted in deia_bot_start_fallbacks_total{reason}. Either way the lifecycle gets a
`Spawned` and goes on the same: record the pid, wait for /health.

Supervision: the worker starts the template when it is ready (bots.tasks), each reconcile
pass of the host and each fallback start it again if it died (`ensure_started`). The
template records the fingerprint of the code and the runner's settings it was started
with; a request carrying another fingerprint (a deploy changed the code, or the worker
runs with other settings) makes it exit, and the worker starts a new one first.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import socket
import subprocess
import sys
import time
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING

from django.conf import settings

from bots import metrics
from bots.lifecycle.process import (
    RUNNER_BOT_FIELDS,
    SECRET_ENV,
    TAG_VAR,
    TEMPLATE_ID,
    Spawned,
    kill_group,
    log_path,
    process_tag,
    runner_process_env,
    runner_tag,
    spawn_runner,
)

if TYPE_CHECKING:
    from bots.models import Bot

log = logging.getLogger("deia.lifecycle")

FINGERPRINT_ENV = "DEIA_TEMPLATE_FINGERPRINT"
ASK_TIMEOUT = 5.0  # a fork takes milliseconds; a template this slow is treated as absent
READY_TIMEOUT = 10.0  # a new template imports Django and the runner: about a second
# The code a runner loads: the template is replaced when any of it changes.
CODE_DIRS = ("deia", "bots")


class Fallback(StrEnum):
    """Why a start did not go through the template (the metric's `reason`)."""

    UNAVAILABLE = "unavailable"  # no template answers on the socket: not started yet, or died
    REPLACING = "replacing"  # its code or settings changed and its successor was not ready in time
    FAILED = "failed"  # it answered but could not fork


class Unavailable(Exception):
    def __init__(self, reason: Fallback, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason


# --- identity -------------------------------------------------------------------------
def socket_path() -> Path:
    """Where this host's template listens (short: a Unix socket path is at most 107 bytes)."""
    digest = hashlib.sha256(runner_tag(TEMPLATE_ID).encode()).hexdigest()[:12]
    return Path(settings.VAR_DIR) / "run" / f"tpl-{digest}.sock"


def template_log() -> Path:
    return Path(settings.LOG_DIR) / f"template-{settings.HOSTNAME}.log"


def code_version() -> str:
    """Name, size and modification time of every source file a runner loads, hashed."""
    digest = hashlib.sha256()
    base = Path(settings.BASE_DIR)
    for folder in CODE_DIRS:
        for root, dirs, files in os.walk(base / folder):
            dirs[:] = sorted(d for d in dirs if d != "__pycache__")
            for name in sorted(files):
                if name.endswith(".py"):
                    stat = os.stat(os.path.join(root, name))
                    digest.update(f"{root}/{name}:{stat.st_size}:{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()


def template_env() -> dict[str, str]:
    """The template's environment: a runner's, with the template's tag (its children get the same)."""
    return runner_process_env(runner_tag(TEMPLATE_ID))


def fingerprint(env: dict[str, str] | None = None) -> str:
    """The code version and the runner settings a template runs with, hashed."""
    env = template_env() if env is None else env
    settings_part = {k: v for k, v in env.items() if k not in (TAG_VAR, SECRET_ENV, FINGERPRINT_ENV)}
    blob = json.dumps([code_version(), sorted(settings_part.items())])
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


# --- talking to it --------------------------------------------------------------------
def _ask(request: dict, timeout: float = ASK_TIMEOUT) -> dict:
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(timeout)
            sock.connect(str(socket_path()))
            sock.sendall(json.dumps(request).encode() + b"\n")
            data = b""
            while not data.endswith(b"\n"):
                chunk = sock.recv(4096)
                if not chunk:
                    break
                data += chunk
    except OSError as exc:
        raise Unavailable(Fallback.UNAVAILABLE, f"{socket_path()}: {exc.strerror or exc}") from exc
    try:
        reply = json.loads(data)
    except ValueError:
        raise Unavailable(Fallback.UNAVAILABLE, "the template hung up without answering") from None
    if not isinstance(reply, dict):
        raise Unavailable(Fallback.FAILED, f"unexpected answer {reply!r}")
    return reply


def ping(fp: str | None = None) -> dict | None:
    """The template's {"pid", "fingerprint"}, or None if none answers. With `fp`, a stale one exits."""
    try:
        return _ask({"op": "ping", "fingerprint": fp} if fp else {"op": "ping"}, timeout=1.0)
    except Unavailable:
        return None


def start_template(fp: str | None = None) -> subprocess.Popen:
    """Start a template in its own session (it exits at once if another holds the socket's lock)."""
    env = template_env()
    env[FINGERPRINT_ENV] = fp or fingerprint(env)
    path = template_log()
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    socket_path().parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    with open(path, "ab") as out:
        return subprocess.Popen(
            [sys.executable, str(settings.BASE_DIR / "manage.py"), "runtemplate"],
            cwd=settings.BASE_DIR,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=out,
            start_new_session=True,
            close_fds=True,
        )


def loading() -> bool:
    """True if a template holds the socket's lock: it is alive, perhaps still importing."""
    try:
        fd = os.open(socket_path().with_suffix(".lock"), os.O_RDWR | os.O_CREAT, 0o600)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # and with it our lock, if we took it
    return False


def ensure_started() -> int | None:
    """This host's template pid if one runs with today's code and settings; else start one (None)."""
    if not settings.BOT_RUNNER_TEMPLATE:
        return None
    fp = fingerprint()
    reply = ping(fp)  # a stale template answers "stale" and exits
    if reply and reply.get("fingerprint") == fp:
        return reply.get("pid")
    if reply is None and loading():
        return None  # started, not listening yet
    start_template(fp)
    return None


def stop() -> list[int]:
    """Stop this host's templates: the one answering and any still loading (runners they forked
    live on in their own sessions). The pids signalled."""
    tag = runner_tag(TEMPLATE_ID)
    pids = [int(entry) for entry in os.listdir("/proc") if entry.isdigit() and process_tag(int(entry)) == tag]
    return [pid for pid in pids if kill_group(pid)]


def wait_ready(fp: str, timeout: float = READY_TIMEOUT) -> int | None:
    """The pid of a template answering with fingerprint `fp` within `timeout` seconds, or None."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        reply = ping()
        if reply and reply.get("fingerprint") == fp:
            return reply.get("pid")
        time.sleep(0.02)
    return None


# --- a start --------------------------------------------------------------------------
def fork_runner(bot: Bot, port: int, secret: str, generation: int = 0) -> Spawned:
    """The template forks the bot's runner; a stale template is replaced first. Raises Unavailable.

    The request carries what the runner needs of the bot's row (RUNNER_BOT_FIELDS),
    read by the worker under the bot's lock a moment ago: the child serves without first
    opening a database connection of its own (its heartbeat opens one once it serves).
    """
    fp = fingerprint()
    path = log_path(bot.slug)
    request = {"op": "fork", "fingerprint": fp, "bot_id": bot.pk, "port": port}
    request |= {"tag": runner_tag(bot.pk), "secret": secret, "generation": generation, "log": str(path)}
    request["bot"] = {field: getattr(bot, field) for field in RUNNER_BOT_FIELDS}
    reply = _ask(request)
    if reply.get("error") == "stale":
        log.info("replacing the runner template", extra={"host": settings.HOSTNAME, "fingerprint": fp})
        start_template(fp)
        if wait_ready(fp) is None:
            raise Unavailable(Fallback.REPLACING, f"no template with fingerprint {fp} within {READY_TIMEOUT:g} s")
        reply = _ask(request)
    if not isinstance(reply.get("pid"), int):
        raise Unavailable(Fallback.FAILED, str(reply.get("error") or reply))
    return Spawned(reply["pid"], path, int(reply.get("log_offset") or 0))


def spawn(bot: Bot, port: int, secret: str, generation: int = 0) -> Spawned:
    """Start the bot's runner: forked by the template if it can, else by exec (counted)."""
    if settings.BOT_RUNNER_TEMPLATE:
        try:
            return fork_runner(bot, port, secret, generation)
        except Unavailable as exc:
            log.warning(
                "runner template unavailable; starting the runner by exec",
                extra={"reason": exc.reason.value, "error": str(exc), "host": settings.HOSTNAME},
            )
            metrics.START_FALLBACKS.inc(reason=exc.reason.value)
            if exc.reason == Fallback.UNAVAILABLE and not loading():
                start_template()  # supervision: the next start finds it
    return spawn_runner(bot.pk, bot.slug, port, secret, generation)
