"""/health/*, /metrics' deia_health_check_up and the Operations page: the dependency probes, graded up or down.

The probes are deia's (`deia.probes.services`) and bots' (`bots.llm.probe_llm`); this
module only picks which to run under which name and grades each result up or down. Each
check runs in its own daemon thread and is abandoned after its timeout, so a dependency
that accepts a connection and never answers cannot hold a probe hostage. The probes also
bound their own I/O (socket timeouts), so an abandoned thread ends soon after.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from django.conf import settings
from prometheus_client import CollectorRegistry, Gauge

from bots.llm import probe_llm, server_url
from bots.models import Backend, Bot
from deia.probes import ProbeResult, describe, run_in_thread
from deia.probes.services import probe_broker, probe_cache, probe_database


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


def check_db() -> ProbeResult:
    return probe_database(_timeout())


def check_cache() -> ProbeResult:
    return probe_cache()


def check_broker() -> ProbeResult:
    return probe_broker(_timeout())


def check_llm() -> ProbeResult:
    """Every LLM server a bot is configured to use answers its model list (which models it
    lists is diagnose's and the runner's business, not the web's readiness)."""
    backends = set(Bot.objects.order_by().values_list("backend", flat=True).distinct())
    found = []
    for backend in (Backend.OLLAMA, Backend.OPENAI):
        if backend in backends:
            result = probe_llm((backend, server_url(backend), ""), timeout=_timeout(), retries=0)
            if not result.ok:
                return result
            found.append(f"{backend}: {len(result.facts['models'])} models")
    return ProbeResult(True, detail="; ".join(found) or "no bot uses an LLM server")


CHECKS: dict[str, Callable[[], ProbeResult]] = {
    "db": check_db,
    "cache": check_cache,
    "broker": check_broker,
    "llm": check_llm,
}


def _timed(fn: Callable[[], ProbeResult]) -> Callable[[], tuple[ProbeResult, float]]:
    def call() -> tuple[ProbeResult, float]:
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
            result, seconds = future.result(timeout=remaining)
            results.append(CheckResult(name, result.ok, seconds * 1000, result.detail))
        except TimeoutError:
            results.append(CheckResult(name, False, timeout * 1000, f"no answer within {timeout:g} s"))
        except Exception as exc:  # noqa: BLE001 - a check that breaks (the bots' table unreadable) is down
            results.append(CheckResult(name, False, (time.perf_counter() - started) * 1000, describe(exc)))
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
