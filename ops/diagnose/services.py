"""The web, Redis (the cache, and in production the broker), the broker, the workers."""

from __future__ import annotations

import time

import httpx
from django.conf import settings

from deia.probes.services import probe_broker, probe_cache, probe_workers
from ops.diagnose.grading import Check, Level, graded, ok


def check_web() -> Check:
    url = f"{settings.DIAGNOSE_WEB_URL}/health"
    started = time.perf_counter()
    try:
        response = httpx.get(url, timeout=settings.DIAGNOSE_TIMEOUT)
    except httpx.HTTPError as exc:
        return Check(
            "web",
            Level.CRIT,
            f"{url} unreachable: {type(exc).__name__}",
            "HTTP 200",
            "runbooks/service-outage.md: systemctl status deia-web; journalctl -u deia-web -n 50",
        )
    ms = (time.perf_counter() - started) * 1000
    if response.status_code != 200:
        return Check(
            "web",
            Level.CRIT,
            f"{url} answered {response.status_code}",
            "HTTP 200",
            "runbooks/service-outage.md: journalctl -u deia-web -n 50",
        )
    return ok("web", f"{url} answered 200 in {ms:.0f} ms", "HTTP 200")


def check_redis() -> Check:
    if not settings.REDIS_URL:
        return ok("redis", "not configured (local-memory cache)")
    result = probe_cache(memory=True)
    if not result.ok:
        return Check(
            "redis",
            Level.CRIT,
            f"unreachable: {result.error}",
            "a value written is read back",
            "runbooks/redis-down.md: systemctl status redis-server; check REDIS_URL",
        )
    facts = result.facts
    used, limit, policy = facts["used_memory"], facts["maxmemory"], facts["maxmemory_policy"]
    # Tasks queued on a shared broker have no TTL: volatile-* evicts only the cache's keys.
    policy_step = "redis-cli CONFIG SET maxmemory-policy volatile-lru (allkeys-lru if the broker is elsewhere)"
    if not limit:
        return Check(
            "redis",
            Level.WARN,
            f"{used / 1048576:.1f} MiB used, no maxmemory (policy {policy})",
            "maxmemory set, an evicting policy",
            f"runbooks/redis-memory-near-max.md: redis-cli CONFIG SET maxmemory 256mb; {policy_step}",
        )
    percent = 100.0 * used / limit
    check = graded(
        "redis",
        percent,
        80,
        95,
        f"{used / 1048576:.1f} of {limit / 1048576:.0f} MiB ({percent:.0f} %), policy {policy}",
        "runbooks/redis-memory-near-max.md: manage.py clear_cache --yes, or raise maxmemory",
        below=False,
    )
    if check.level == Level.OK and policy == "noeviction":
        check.level, check.next_step = Level.WARN, f"runbooks/redis-memory-near-max.md: {policy_step}"
        check.threshold += ", an evicting policy"
    return check


def check_broker_reachable() -> Check:
    result = probe_broker(settings.HEALTH_CHECK_TIMEOUT)
    if not result.ok:
        return Check(
            "broker",
            Level.CRIT,
            f"unreachable: {result.error}",
            "connects",
            "check CELERY_BROKER_URL / REDIS_URL and the Redis service",
        )
    return ok("broker", result.detail or "connected")


def check_workers() -> Check:
    # Celery's own default: a ping waits for every worker's answer until its timeout, so this
    # is the check's duration (replies over a working broker come within milliseconds).
    result = probe_workers(min(1.0, settings.DIAGNOSE_TIMEOUT / 2))
    threshold = "at least one answers"
    if result.ok:
        return ok("workers", result.detail, threshold)
    if result.facts.get("pingable") is False:
        return Check(
            "workers",
            Level.WARN,
            result.detail,
            "one worker answers",
            "use Redis (REDIS_URL) in production; check the worker processes with ps",
        )
    return Check(
        "workers",
        Level.WARN,
        result.detail,
        threshold,
        "systemctl status deia-worker deia-maintenance; journalctl -u deia-worker -n 50",
    )
