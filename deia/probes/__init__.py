"""One probe per dependency, graded by its callers.

A probe asks one dependency one question and says what it found: a `ProbeResult` with
`ok`, the time it took, a one-line `detail` and `facts` (free bytes, the models a server
lists, the workers that answered). It never decides how bad a finding is: the health
endpoints grade a result up or down, diagnose OK/WARN/CRIT against its thresholds with a
next step, the bot runner refuses to start. The infrastructure's probes are in
`deia.probes.services`; the LLM servers' in `bots.llm` (`probe_llm`). This module stays
light (no Celery, no cache client): a bot runner imports it.
"""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from dataclasses import dataclass, field, replace
from typing import Any, ParamSpec

from django.db import connections

from deia.redact import redact

P = ParamSpec("P")


@dataclass(frozen=True)
class ProbeResult:
    ok: bool
    latency_s: float = 0.0
    # What was found, or why it failed: one line, passwords in URLs masked.
    detail: str = ""
    facts: Mapping[str, Any] = field(default_factory=dict)
    # The failure itself, for callers that grade by its kind (a missing model, a timeout).
    error: BaseException | None = None


def describe(exc: BaseException) -> str:
    """An exception as one redacted line: its type and message."""
    return redact(f"{type(exc).__name__}: {exc}".strip())[:300]


def probe(fn: Callable[P, ProbeResult]) -> Callable[P, ProbeResult]:
    """Time `fn` and turn whatever it raises into a failed result: a probe never raises."""

    @functools.wraps(fn)
    def timed(*args: P.args, **kwargs: P.kwargs) -> ProbeResult:
        started = time.perf_counter()
        try:
            result = fn(*args, **kwargs)
        except Exception as exc:  # noqa: BLE001 - every failure is a finding
            return ProbeResult(False, time.perf_counter() - started, describe(exc), error=exc)
        return replace(result, latency_s=time.perf_counter() - started, detail=redact(result.detail))

    return timed


def run_in_thread(fn: Callable[[], Any]) -> Future:
    """Start `fn` in a daemon thread that may be abandoned; the future holds its result.

    Callers wait on the future with their own deadline, so a dependency that accepts a
    connection and never answers costs a timeout, not a hang; the probes also bound their
    own I/O, so an abandoned thread ends soon after.
    """
    future: Future = Future()

    def target() -> None:
        try:
            future.set_result(fn())
        except BaseException as exc:  # noqa: BLE001 - handed to the caller through the future
            future.set_exception(exc)
        finally:
            # The thread is thrown away: give its database connection back to the pool,
            # or every check would leak one and the pool would run dry.
            connections.close_all()

    threading.Thread(target=target, name=f"probe-{fn.__name__}", daemon=True).start()
    return future
