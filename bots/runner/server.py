"""The runner process: start-up checks, the uvicorn server, the heartbeat, the SIGTERM drain.

Why uvicorn: the runner answers on an asyncio loop, so a chat waiting on the LLM holds no
thread, a busy bot can refuse at once, and a client that goes away is noticed and stops
the LLM request. One process per bot, no master/worker pair: a bot costs one Django
process of memory. On SIGTERM uvicorn closes the listening socket at once, lets the chats
in hand finish within BOT_STOP_GRACE, then the process exits 0.

Fencing (docs/ARCHITECTURE.md#fencing): the runner knows its start's generation
(DEIA_BOT_GENERATION). Its heartbeat is accepted only while that generation is the bot's
current one (or the handover's, while a drain moves it); a refused heartbeat means the bot
was placed elsewhere or started again: the runner stops serving and exits at once
(EXIT_FENCED). A runner that cannot record a heartbeat for BOT_FENCE_SECONDS (database
unreachable, or the process was frozen) exits too, and /chat refuses (503) as soon as the
last good heartbeat is that old, measured on the monotonic clock. So when its host is
declared lost (HOST_LEASE_SECONDS after the host's last heartbeat), its runners have
stopped serving already.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import sys
import time
from dataclasses import dataclass

import uvicorn
from django.conf import settings
from django.db import DatabaseError, close_old_connections, connection
from django.db.models import Q
from django.utils import timezone

from bots.lifecycle.process import GENERATION_ENV, SECRET_ENV
from bots.llm import ModelNotFound, get_backend, probe_llm
from bots.metrics import init_runner_metrics
from bots.models import Bot
from bots.runner.app import RunnerApp
from bots.runner.chat import BotContext, in_db
from bots.runner.uvicorn_adapter import Server, ignore_reraised_signals

log = logging.getLogger("deia.runner")

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_MODEL_MISSING, EXIT_FENCED = 0, 1, 2, 3, 4
# Seconds between the fence watch's looks at the heartbeat's age.
FENCE_WATCH_INTERVAL = 0.25


class StartupError(Exception):
    def __init__(self, message: str, code: int = EXIT_FAILED) -> None:
        super().__init__(message)
        self.code = code


def _listen(host: str, port: int, slug: str) -> socket.socket:
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
        # With its protocol named (IPPROTO_TCP), asyncio turns Nagle off on each connection;
        # with proto 0 it does not, and every keep-alive answer waits 40 ms for a delayed ACK.
        sock = socket.socket(family, kind, proto)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.bind(address)
        sock.listen(2048)
    except OSError as exc:
        raise StartupError(f"cannot listen on {host}:{port} for bot {slug!r}: {exc.strerror or exc}") from exc
    sock.set_inheritable(True)
    return sock


@dataclass
class Runner:
    ctx: BotContext
    app: RunnerApp
    sock: socket.socket
    grace: float
    heartbeat_interval: float
    generation: int = 0
    fence_seconds: float = 45.0
    last_beat: float = 0.0  # time.monotonic() of the last accepted heartbeat

    # --- start ---------------------------------------------------------------------
    @classmethod
    def start(cls, ref: str, port: int | None, started: float, facts: dict[str, str] | None = None) -> Runner:
        """Check and prepare the bot's runner. `facts`: its row's RUNNER_BOT_FIELDS, when the
        runner template was given them with the fork (no database read before serving)."""
        bot = Bot(pk=int(ref), **facts) if facts is not None else cls.read_bot(ref)
        port = port or bot.port
        if not port:
            raise StartupError(f"no port for bot {bot.slug!r}: pass --port N", EXIT_USAGE)
        # Listening before the LLM check: the lifecycle's first /health probe waits in the
        # backlog and is answered the moment the server serves, not at its next poll.
        sock = _listen(settings.BOT_BIND_HOST, port, bot.slug)
        probe = probe_llm(bot)
        if isinstance(probe.error, ModelNotFound):
            raise StartupError(str(probe.error), EXIT_MODEL_MISSING) from probe.error
        if not probe.ok:
            raise StartupError(
                f"LLM backend {bot.backend} for bot {bot.slug!r} failed its check: {probe.error}"
            ) from probe.error
        backend = get_backend(bot)
        ctx = BotContext(
            bot_id=bot.pk, slug=bot.slug, model=bot.model_name, backend=backend, system_prompt=bot.system_prompt
        )
        connection.close()
        # Out of the environment at once: nothing this process starts inherits it.
        secret = os.environ.pop(SECRET_ENV, "")
        if not secret:
            log.warning("no %s given: /chat refuses every request", SECRET_ENV, extra={"bot": bot.slug})
        init_runner_metrics(bot.slug)
        app = RunnerApp(
            ctx,
            backend.name,
            started,
            secret=secret,
            max_chats=settings.BOT_MAX_CONCURRENT_CHATS,
            timeout=settings.BOT_CHAT_TIMEOUT,
        )
        log.info(
            "runner listening",
            extra={
                "bot": bot.slug,
                "host": settings.BOT_BIND_HOST,
                "port": port,
                "model": bot.model_name,
                "backend": backend.name,
            },
        )
        runner = cls(ctx, app, sock, settings.BOT_STOP_GRACE, settings.BOT_HEARTBEAT_INTERVAL)
        runner.generation = int(os.environ.get(GENERATION_ENV) or 0)
        runner.fence_seconds = settings.BOT_FENCE_SECONDS
        runner.last_beat = time.monotonic()  # the bot was just read from the database (here or by the worker)
        app.generation, app.fenced, app.on_fenced = runner.generation, runner.fence_reason, runner.exit_fenced
        return runner

    @staticmethod
    def read_bot(ref: str) -> Bot:
        try:
            bot = Bot.objects.by_ref(ref)
        except DatabaseError as exc:
            raise StartupError(f"cannot read bot {ref!r} from the database: {exc}") from exc
        if bot is None:
            raise StartupError(f"bot {ref!r} not found (give its id or slug)", EXIT_USAGE)
        return bot

    # --- serve ---------------------------------------------------------------------
    def serve(self) -> int:
        config = uvicorn.Config(
            self.app,
            lifespan="off",
            http="httptools",
            loop="asyncio",
            log_config=None,
            access_log=False,  # the app logs one JSON line per request itself
            server_header=False,
            timeout_graceful_shutdown=self.grace,
            timeout_keep_alive=30,
        )
        server = Server(config, on_exit_signal=self._stopping)
        ignore_reraised_signals()  # the process exits 0 after a graceful stop
        asyncio.run(self._serve(server))
        log.info("runner stopped", extra={"bot": self.ctx.slug})
        return EXIT_OK

    def _stopping(self, sig: int) -> None:
        """On SIGTERM or SIGINT: the app is draining (its /health says so)."""
        self.app.draining = True
        log.info("runner stopping", extra={"signal": signal.Signals(sig).name, "inflight": self.app.inflight})

    async def _serve(self, server: Server) -> None:
        beat = asyncio.ensure_future(self._heartbeat_loop(server))
        watch = asyncio.ensure_future(self._fence_watch())
        try:
            await server.serve(sockets=[self.sock])
        finally:
            beat.cancel()
            watch.cancel()
            if self.app.inflight:
                log.warning("grace period over with chats still in flight", extra={"inflight": self.app.inflight})
            await self.ctx.backend.aclose()

    # --- heartbeat and fencing -------------------------------------------------------
    async def _heartbeat_loop(self, server: Server) -> None:
        while True:
            verdict = await in_db(self.beat)
            if verdict == GONE:
                log.warning("bot row is gone; shutting down", extra={"bot": self.ctx.slug})
                self.app.draining = True
                server.stop()  # the same graceful path as an operator stop
                return
            if verdict == FENCED:
                self.exit_fenced(f"heartbeat refused: generation {self.generation} is no longer current")
                return
            await asyncio.sleep(self.heartbeat_interval)

    async def _fence_watch(self) -> None:
        """Exit once no heartbeat was accepted for BOT_FENCE_SECONDS, even if the heartbeat hangs."""
        while True:
            reason = self.fence_reason()
            if reason:
                self.exit_fenced(reason)
                return
            await asyncio.sleep(FENCE_WATCH_INTERVAL)

    def fence_reason(self) -> str | None:
        """Why this runner may not serve any more (its last good heartbeat is too old), or None."""
        age = time.monotonic() - self.last_beat
        if age > self.fence_seconds:
            return f"no heartbeat accepted for {age:.1f} s (BOT_FENCE_SECONDS {self.fence_seconds:g})"
        return None

    def exit_fenced(self, reason: str) -> None:
        """Stop serving and exit at once: another runner of the bot may serve by now."""
        self.app.draining = True
        log.error("runner fenced; exiting", extra={"bot": self.ctx.slug, "reason": reason})
        for handler in logging.getLogger().handlers:
            handler.flush()
        # A moment for a refusal being written to reach its client, then no more.
        asyncio.get_running_loop().call_later(0.05, os._exit, EXIT_FENCED)

    def beat(self) -> str:
        """Record a heartbeat and refresh the system prompt: OK, FENCED (another generation) or GONE."""
        try:
            close_old_connections()
            # Written only once the lifecycle has recorded our pid, and only for this start's
            # generation: an older process of the bot (a stale runner on a lost host, one frozen
            # and resumed) never keeps a newer record alive.
            mine = Bot.objects.filter(pk=self.ctx.bot_id)
            if not mine.filter(generation=self.generation, pid=os.getpid()).update(last_heartbeat=timezone.now()):
                # Still current: a start whose pid is not recorded yet, or a drain's handover runner.
                current = Q(generation=self.generation) | Q(handover_generation=self.generation)
                if not mine.filter(current).exists():
                    return FENCED if mine.exists() else GONE
            prompts = list(mine.values_list("system_prompt", flat=True))
        except DatabaseError as exc:
            # Not fatal by itself: the fence watch ends it after BOT_FENCE_SECONDS without success.
            log.warning("heartbeat failed", extra={"error": f"{type(exc).__name__}: {exc}"})
            return OK
        self.last_beat = time.monotonic()
        if not prompts:
            return GONE
        with self.ctx.lock:
            self.ctx.system_prompt = prompts[0]
        return OK


OK, FENCED, GONE = "ok", "fenced", "gone"


def run(ref: str, port: int | None, facts: dict[str, str] | None = None) -> int:
    """`manage.py runbot` (and a forked runner, given its bot's `facts`): serve until SIGTERM;
    one stderr line and an exit code on failure."""
    started = time.monotonic()
    try:
        runner = Runner.start(ref, port, started, facts)
    except StartupError as exc:
        # One line: the lifecycle stores it as the bot's last_error.
        sys.stderr.write(" ".join(str(exc).split()) + "\n")
        sys.stderr.flush()
        return exc.code
    return runner.serve()
