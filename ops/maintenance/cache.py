"""Redis persistence: BGSAVE where Redis persists, reported as skipped where it does not."""

from __future__ import annotations

import time

import redis
from django.conf import settings

from ops.maintenance.runs import JobFailed, Outcome

BGSAVE_TIMEOUT = 600.0


def _persists(client: redis.Redis) -> tuple[bool, dict]:
    try:
        config = {**client.config_get("save"), **client.config_get("appendonly")}
    except redis.ResponseError:
        # CONFIG renamed away (managed Redis): assume it persists and let BGSAVE tell.
        return True, {"config": "unavailable"}
    persists = bool(config.get("save", "").strip()) or config.get("appendonly") == "yes"
    return persists, config


def redis_bgsave() -> Outcome:
    if not settings.REDIS_URL:
        return Outcome("skipped: no Redis configured (REDIS_URL unset)", {"skipped": True})
    client = redis.Redis.from_url(settings.REDIS_URL, socket_timeout=10, socket_connect_timeout=5)
    try:
        persists, config = _persists(client)
        if not persists:
            return Outcome(
                "skipped: this Redis does not persist (save '' and appendonly no)", {"skipped": True, **config}
            )
        started = time.monotonic()
        try:
            client.bgsave()
        except redis.ResponseError as exc:
            # One already running is as good as ours: wait for it.
            if "in progress" not in str(exc):
                raise JobFailed(f"BGSAVE refused: {exc}") from None
        # BGSAVE forks before it replies, so "in progress" is already set: wait for it to clear.
        while (info := client.info("persistence"))["rdb_bgsave_in_progress"]:
            if time.monotonic() - started > BGSAVE_TIMEOUT:
                raise JobFailed(f"BGSAVE still running after {BGSAVE_TIMEOUT:g} s")
            time.sleep(0.2)
        details = {
            **config,
            "status": info.get("rdb_last_bgsave_status"),
            "last_save": info.get("rdb_last_save_time"),
            "duration_seconds": round(time.monotonic() - started, 3),
        }
        if info.get("rdb_last_bgsave_status") != "ok":
            raise JobFailed(f"BGSAVE finished with status {info.get('rdb_last_bgsave_status')}", details)
        return Outcome(f"BGSAVE done in {details['duration_seconds']:.1f} s", details)
    finally:
        client.close()
