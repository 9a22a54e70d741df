"""The runner process: start-up checks, the waitress server, the heartbeat, the SIGTERM drain.

Why waitress: a production-grade, pure-Python threaded WSGI server that runs in one
process — no master/worker pair, so a bot costs one Django process of memory (100 bots on
one host). Its threads let a slow LLM answer wait without blocking /health or other chats.
Its own shutdown drops in-flight requests, so the drain is done here: on SIGTERM the
listening socket closes at once, the event loop keeps running until the chats in hand are
answered (or BOT_STOP_GRACE passes), then the process exits 0.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
import time
from dataclasses import dataclass

from django.conf import settings
from django.db import DatabaseError, close_old_connections, connection, connections
from django.utils import timezone
from waitress import wasyncore
from waitress.channel import HTTPChannel
from waitress.server import BaseWSGIServer, create_server

from bots.llm import LLMError, ModelNotFound, get_backend
from bots.metrics import init_runner_metrics
from bots.models import Bot
from bots.runner.app import RunnerApp
from bots.runner.chat import BotContext

log = logging.getLogger("deia.runner")

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_MODEL_MISSING = 0, 1, 2, 3
THREADS = 16  # chats answered at once; a 17th waits in waitress' queue


class StartupError(Exception):
    def __init__(self, message: str, code: int = EXIT_FAILED) -> None:
        super().__init__(message)
        self.code = code


def find_bot(ref: str) -> Bot:
    """A bot by id or slug."""
    bot = Bot.objects.filter(pk=int(ref)).first() if ref.isdigit() else Bot.objects.filter(slug=ref).first()
    if bot is None:
        raise StartupError(f"bot {ref!r} not found (give its id or slug)", EXIT_USAGE)
    return bot


@dataclass
class Runner:
    ctx: BotContext
    app: RunnerApp
    server: BaseWSGIServer
    grace: float
    heartbeat_interval: float

    def __post_init__(self) -> None:
        self.stopping = False
        self.deadline = 0.0
        self._stop_heartbeat = threading.Event()
        # One listener normally; waitress returns a multi-socket server if the host
        # resolves to several addresses.
        self.map: dict = getattr(self.server, "_map", None) or self.server.map

    # --- start ---------------------------------------------------------------------
    @classmethod
    def start(cls, ref: str, port: int | None, started: float) -> Runner:
        try:
            bot = find_bot(ref)
        except DatabaseError as exc:
            raise StartupError(f"cannot read bot {ref!r} from the database: {exc}") from exc
        port = port or bot.port
        if not port:
            raise StartupError(f"no port for bot {bot.slug!r}: pass --port N", EXIT_USAGE)
        backend = get_backend(bot)
        try:
            backend.check_model()
        except ModelNotFound as exc:
            raise StartupError(str(exc), EXIT_MODEL_MISSING) from exc
        except LLMError as exc:
            raise StartupError(f"LLM backend {bot.backend} for bot {bot.slug!r} failed its check: {exc}") from exc
        ctx = BotContext(
            bot_id=bot.pk, slug=bot.slug, model=bot.model_name, backend=backend, system_prompt=bot.system_prompt
        )
        connection.close()
        init_runner_metrics(bot.slug)
        app = RunnerApp(ctx, backend.name, started)
        host = settings.BOT_BIND_HOST
        try:
            server = create_server(
                app,
                host=host,
                port=port,
                threads=THREADS,
                # Our own 32 KiB check answers JSON; this only stops absurd uploads early.
                max_request_body_size=1024 * 1024,
                asyncore_use_poll=True,
                ident="deia-runner",
                channel_timeout=60,
            )
        except OSError as exc:
            raise StartupError(f"cannot listen on {host}:{port} for bot {bot.slug!r}: {exc.strerror or exc}") from exc
        log.info(
            "runner listening",
            extra={"bot": bot.slug, "host": host, "port": port, "model": bot.model_name, "backend": backend.name},
        )
        return cls(ctx, app, server, settings.BOT_STOP_GRACE, settings.BOT_HEARTBEAT_INTERVAL)

    # --- serve ---------------------------------------------------------------------
    def serve(self) -> int:
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)
        beat = threading.Thread(target=self._heartbeat_loop, name="heartbeat", daemon=True)
        beat.start()
        while not self.stopping:
            wasyncore.loop(timeout=0.5, map=self.map, use_poll=True, count=1)
        # Draining: the listener is closed; keep the loop turning so answers go out.
        while self._busy() and time.monotonic() < self.deadline:
            wasyncore.loop(timeout=0.05, map=self.map, use_poll=True, count=1)
        if self._busy():
            log.warning("grace period over with chats still in flight", extra={"inflight": self.app.inflight})
        self._stop_heartbeat.set()
        self._shutdown()
        log.info("runner stopped", extra={"bot": self.ctx.slug})
        return EXIT_OK

    def _on_signal(self, signum: int, frame: object) -> None:
        if self.stopping:
            return
        self.stopping = True
        self.deadline = time.monotonic() + self.grace
        self.app.draining.set()
        # Stop accepting at once: the port closes now, not after the drain.
        for listener in self._listeners():
            listener.accepting = False
            wasyncore.dispatcher.close(listener)  # not listener.close(): that also kills the trigger
        log.info("runner stopping", extra={"signal": signal.Signals(signum).name, "inflight": self.app.inflight})

    def _listeners(self) -> list[BaseWSGIServer]:
        return [d for d in list(self.map.values()) if isinstance(d, BaseWSGIServer)]

    def _busy(self) -> bool:
        """True while a request is being served or its answer is still being sent."""
        busy = self.app.inflight > 0
        for channel in [d for d in list(self.map.values()) if isinstance(d, HTTPChannel)]:
            if channel.requests or channel.total_outbufs_len:
                busy = True
            else:
                # An idle keep-alive connection: close it so its client reconnects elsewhere.
                channel.will_close = True
        return busy

    def _shutdown(self) -> None:
        dispatcher = getattr(self.server, "task_dispatcher", None)
        if dispatcher is None:  # multi-socket server: its listeners share one dispatcher
            dispatcher = next(iter(self._listeners()), None)
            dispatcher = getattr(dispatcher, "task_dispatcher", None)
        if dispatcher is not None:
            dispatcher.shutdown(cancel_pending=True, timeout=1)
        wasyncore.close_all(self.map)
        close = getattr(self.ctx.backend, "close", None)
        if close:
            close()
        connections.close_all()

    # --- heartbeat -----------------------------------------------------------------
    def _heartbeat_loop(self) -> None:
        while not self._stop_heartbeat.is_set():
            if not self.beat():
                log.warning("bot row is gone; shutting down", extra={"bot": self.ctx.slug})
                os.kill(os.getpid(), signal.SIGTERM)  # the same graceful path as an operator stop
                return
            self._stop_heartbeat.wait(self.heartbeat_interval)

    def beat(self) -> bool:
        """Record a heartbeat and refresh the system prompt; False once the bot row is gone."""
        try:
            close_old_connections()
            # Matches only once the lifecycle has recorded our pid: an older process of
            # the same bot can never keep a newer record alive.
            Bot.objects.filter(pk=self.ctx.bot_id, pid=os.getpid()).update(last_heartbeat=timezone.now())
            prompts = list(Bot.objects.filter(pk=self.ctx.bot_id).values_list("system_prompt", flat=True))
        except DatabaseError as exc:
            log.warning("heartbeat failed", extra={"error": f"{type(exc).__name__}: {exc}"})
            return True  # a database outage is not a reason to stop serving
        finally:
            connection.close()
        if not prompts:
            return False
        with self.ctx.lock:
            self.ctx.system_prompt = prompts[0]
        return True


def run(ref: str, port: int | None) -> int:
    """`manage.py runbot`: serve until SIGTERM; one stderr line and an exit code on failure."""
    started = time.monotonic()
    try:
        runner = Runner.start(ref, port, started)
    except StartupError as exc:
        # One line: the lifecycle stores it as the bot's last_error.
        sys.stderr.write(" ".join(str(exc).split()) + "\n")
        sys.stderr.flush()
        return exc.code
    return runner.serve()
