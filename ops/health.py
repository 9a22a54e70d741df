"""Dependency checks for /health/*, /metrics (deia_health_check_up), diagnose and the Operations page.

Each check runs in its own daemon thread and is abandoned after its timeout, so a
dependency that accepts a connection and never answers cannot hold a probe hostage. The
checks also bound their own I/O (socket timeouts), so an abandoned thread ends soon after.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

import httpx
import redis
from django.conf import settings
from django.core.cache import cache, caches
from django.db import connections
from prometheus_client import CollectorRegistry, Gauge

from bots.models import Backend, Bot
from deia.celery import app as celery_app
from deia.redact import redact

# Load the cache backend's modules now, in the importing thread: two check threads
# importing redis' modules for the first time at once deadlock on the import locks.
caches["default"]


@dataclass
class CheckResult:
    name: str
    ok: bool
    latency_ms: float
    detail: str = ""

    def as_dict(self, *, detail: bool = True) -> dict:
        """Status and latency; the detail (error text, host names) only when `detail`."""
        return {
            "status": "ok" if self.ok else "error",
            "latency_ms": round(self.latency_ms, 2),
            **({"detail": self.detail} if self.detail and detail else {}),
        }


def _timeout() -> float:
    return settings.HEALTH_CHECK_TIMEOUT


def check_db() -> str:
    with connections["default"].cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()
    return ""


def check_cache() -> str:
    key = f"deia:health:{threading.get_ident()}"
    cache.set(key, "1", timeout=10)
    if cache.get(key) != "1":
        raise RuntimeError("value written to the cache was not read back")
    cache.delete(key)
    if cache.get(key) is not None:
        raise RuntimeError("value deleted from the cache was still read back")
    return ""


def check_broker() -> str:
    url = celery_app.conf.broker_url or ""
    if url.startswith("filesystem"):
        folder = settings.BROKER_DIR / "queue"
        if not folder.is_dir():
            raise RuntimeError(f"broker folder {folder} does not exist")
        return "filesystem broker"
    if url.startswith(("redis", "rediss", "unix")):
        # kombu's ensure_connection bounds the retries, not a PING that never comes back.
        client = redis.Redis.from_url(url, socket_connect_timeout=_timeout(), socket_timeout=_timeout())
        try:
            client.ping()
        finally:
            client.close()
        return ""
    from kombu import Connection

    options = {"read_timeout": _timeout(), "write_timeout": _timeout()}
    with Connection(url, connect_timeout=_timeout(), transport_options=options) as conn:
        conn.ensure_connection(max_retries=1, timeout=_timeout())
    return ""


def _llm_get(url: str, headers: dict[str, str] | None = None) -> int:
    response = httpx.get(url, timeout=httpx.Timeout(_timeout()), headers=headers)
    response.raise_for_status()
    body = response.json()
    # Ollama lists {"models": [...]}, OpenAI-compatible servers {"data": [...]}.
    return len(body.get("models") or body.get("data") or [])


def check_llm() -> str:
    """The model list of every LLM server a bot is configured to use."""
    backends = set(Bot.objects.order_by().values_list("backend", flat=True).distinct())
    found = []
    if Backend.OLLAMA in backends:
        found.append(f"ollama: {_llm_get(f'{settings.OLLAMA_URL}/api/tags')} models")
    if Backend.OPENAI in backends:
        headers = {"Authorization": f"Bearer {settings.OPENAI_API_KEY}"} if settings.OPENAI_API_KEY else None
        found.append(f"openai: {_llm_get(f'{settings.OPENAI_URL}/models', headers)} models")
    return "; ".join(found) or "no bot uses an LLM server"


CHECKS: dict[str, Callable[[], str]] = {
    "db": check_db,
    "cache": check_cache,
    "broker": check_broker,
    "llm": check_llm,
}


def run_in_thread(fn: Callable[[], Any]) -> Future:
    """Start `fn` in a daemon thread that may be abandoned; the future holds its result."""
    future: Future = Future()

    def target() -> None:
        try:
            future.set_result(fn())
        except BaseException as exc:  # noqa: BLE001 - every failure is a failed check
            future.set_exception(exc)
        finally:
            # The thread is thrown away: give its database connection back to the pool,
            # or every check would leak one and the pool would run dry.
            connections.close_all()

    threading.Thread(target=target, name=f"health-{fn.__name__}", daemon=True).start()
    return future


def _timed(fn: Callable[[], str]) -> Callable[[], tuple[str, float]]:
    def call() -> tuple[str, float]:
        started = time.perf_counter()
        return fn(), time.perf_counter() - started

    call.__name__ = fn.__name__
    return call


def run_checks(names: list[str], timeout: float | None = None) -> list[CheckResult]:
    """Run the named checks in parallel; each gets `timeout` seconds at most, all of them too."""
    timeout = _timeout() if timeout is None else timeout
    started = time.perf_counter()
    futures = {name: run_in_thread(_timed(CHECKS[name])) for name in names}
    results = []
    for name, future in futures.items():
        remaining = max(0.0, timeout - (time.perf_counter() - started))
        try:
            detail, seconds = future.result(timeout=remaining)
            results.append(CheckResult(name, True, seconds * 1000, detail))
        except TimeoutError:
            results.append(CheckResult(name, False, timeout * 1000, f"no answer within {timeout:g} s"))
        except Exception as exc:  # noqa: BLE001
            elapsed = (time.perf_counter() - started) * 1000
            results.append(CheckResult(name, False, elapsed, redact(f"{type(exc).__name__}: {exc}".strip())[:300]))
    record_health(results)
    return results


# --- dependency health (set by every check; refreshed in the background at scrape) -------
# Registered only here, so that a bot runner's /metrics (the default registry) carries no
# web-only families; under gunicorn the multiprocess files carry them whatever the registry.
WEB_REGISTRY = CollectorRegistry()
HEALTH_UP = Gauge(
    "deia_health_check_up",
    "1 if the dependency check passed the last time it ran, else 0.",
    ["check"],
    multiprocess_mode="livemostrecent",
    registry=WEB_REGISTRY,
)
HEALTH_SECONDS = Gauge(
    "deia_health_check_seconds",
    "Seconds the dependency check took the last time it ran (its timeout when it hung).",
    ["check"],
    multiprocess_mode="livemostrecent",
    registry=WEB_REGISTRY,
)
_checked_at: dict[str, float] = {}
_refresh_lock = threading.Lock()
_refresh: threading.Thread | None = None
# A scrape waits this long for the very first results of a process, never longer.
FIRST_HEALTH_WAIT = 0.25


def record_health(results) -> None:
    """Called by ops.health.run_checks with every result, whoever asked for the check."""
    now = time.monotonic()
    for result in results:
        HEALTH_UP.labels(check=result.name).set(1 if result.ok else 0)
        HEALTH_SECONDS.labels(check=result.name).set(result.latency_ms / 1000)
        _checked_at[result.name] = now


def refresh_health() -> None:
    """Re-run in the background the checks older than HEALTH_METRICS_MAX_AGE.

    A scrape must stay fast and must not hang on a hanging dependency, so it never waits
    for a check, except briefly for a process's very first results.
    """
    global _refresh
    now = time.monotonic()
    stale = [n for n in CHECKS if now - _checked_at.get(n, -math.inf) > settings.HEALTH_METRICS_MAX_AGE]
    if not stale:
        return
    with _refresh_lock:
        if _refresh is None or not _refresh.is_alive():
            _refresh = threading.Thread(target=run_checks, args=(stale,), name="health-refresh", daemon=True)
            _refresh.start()
        thread = _refresh
    if any(n not in _checked_at for n in CHECKS):
        thread.join(FIRST_HEALTH_WAIT)
