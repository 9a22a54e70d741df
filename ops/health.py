"""Dependency checks for /health/*, diagnose and the Operations page.

Each check runs in its own daemon thread and is abandoned after its timeout, so a
dependency that accepts a connection and never answers cannot hold a probe hostage.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass

import httpx
from django.conf import settings
from django.core.cache import cache
from django.db import connections


@dataclass
class CheckResult:
    name: str
    ok: bool
    latency_ms: float
    detail: str = ""

    def as_dict(self) -> dict:
        return {
            "status": "ok" if self.ok else "error",
            "latency_ms": round(self.latency_ms, 2),
            **({"detail": self.detail} if self.detail else {}),
        }


def check_db() -> str:
    conn = connections["default"]
    try:
        with conn.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    finally:
        # This thread is thrown away: give its connection back to the pool now.
        conn.close()
    return ""


def check_cache() -> str:
    key = f"deia:health:{threading.get_ident()}"
    cache.set(key, "1", timeout=10)
    if cache.get(key) != "1":
        raise RuntimeError("value written to the cache was not read back")
    cache.delete(key)
    return ""


def check_broker() -> str:
    from deia.celery import app

    url = app.conf.broker_url or ""
    if url.startswith("filesystem"):
        folder = settings.BROKER_DIR / "queue"
        if not folder.is_dir():
            raise RuntimeError(f"broker folder {folder} does not exist")
        return "filesystem broker"
    with app.connection_for_write() as conn:
        conn.ensure_connection(max_retries=1, timeout=settings.HEALTH_CHECK_TIMEOUT)
    return ""


def check_llm() -> str:
    from bots.models import Backend, Bot

    if not Bot.objects.filter(backend=Backend.OLLAMA).exists():
        return "no bot uses the ollama backend"
    timeout = httpx.Timeout(settings.HEALTH_CHECK_TIMEOUT)
    response = httpx.get(f"{settings.OLLAMA_URL}/api/tags", timeout=timeout)
    response.raise_for_status()
    models = response.json().get("models", [])
    return f"{len(models)} models"


CHECKS: dict[str, Callable[[], str]] = {
    "db": check_db,
    "cache": check_cache,
    "broker": check_broker,
    "llm": check_llm,
}


def _run_in_thread(fn: Callable[[], str]) -> Future:
    future: Future = Future()

    def target() -> None:
        try:
            future.set_result(fn())
        except BaseException as exc:  # noqa: BLE001 - every failure is a failed check
            future.set_exception(exc)

    threading.Thread(target=target, name=f"health-{fn.__name__}", daemon=True).start()
    return future


def run_checks(names: list[str], timeout: float | None = None) -> list[CheckResult]:
    """Run the named checks in parallel; each gets `timeout` seconds at most."""
    timeout = settings.HEALTH_CHECK_TIMEOUT if timeout is None else timeout
    started = time.perf_counter()
    futures = {name: _run_in_thread(CHECKS[name]) for name in names}
    results = []
    for name, future in futures.items():
        remaining = max(0.0, timeout - (time.perf_counter() - started))
        try:
            detail = future.result(timeout=remaining)
            ok = True
        except TimeoutError:
            ok, detail = False, f"no answer within {timeout:g} s"
        except Exception as exc:  # noqa: BLE001
            ok, detail = False, f"{type(exc).__name__}: {exc}".strip()[:300]
        results.append(CheckResult(name, ok, (time.perf_counter() - started) * 1000, detail))
    return results
