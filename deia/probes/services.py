"""The infrastructure's probes: the database, the cache, the broker, the workers, a disk.

Each takes the seconds it may spend on I/O and returns a `deia.probes.ProbeResult`; see
that module for who grades them. Not for a bot runner: this module loads Celery.
"""

from __future__ import annotations

import shutil
import threading
from pathlib import Path

import psycopg
import redis
from django.conf import settings
from django.core.cache import cache, caches
from django.db import connections
from django_redis import get_redis_connection
from kombu import Connection

from deia.celery import app as celery_app
from deia.probes import ProbeResult, probe

# Load the cache backend's modules now, in the importing thread: two probe threads
# importing redis' modules for the first time at once deadlock on the import locks.
caches["default"]


@probe
def probe_database(timeout: float, *, own_connection: bool = False) -> ProbeResult:
    """SELECT 1, through the pool as the application's requests go.

    With `own_connection`, on PostgreSQL, over a connection of its own instead: the pool
    retries for its whole timeout and hides the reason ("connection refused", "password
    authentication failed") that an operator needs.
    """
    if own_connection and settings.DATABASE_IS_POSTGRES:
        db = connections["default"].settings_dict
        with psycopg.connect(
            dbname=db["NAME"],
            user=db.get("USER") or None,
            password=db.get("PASSWORD") or None,
            host=db.get("HOST") or None,
            port=str(db.get("PORT") or "5432"),
            connect_timeout=max(1, int(timeout)),
            application_name="deia-diagnose",
        ) as conn:
            conn.execute("SELECT 1").fetchone()
        return ProbeResult(True)
    with connections["default"].cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()
    return ProbeResult(True)


@probe
def probe_cache(*, memory: bool = False) -> ProbeResult:
    """A value written to Django's cache, read back, deleted (its client's own timeouts).

    `memory` adds the Redis server's memory facts (used_memory, maxmemory,
    maxmemory_policy); a local-memory cache has none.
    """
    key = f"deia:health:{threading.get_ident()}"
    cache.set(key, "1", timeout=10)
    if cache.get(key) != "1":
        raise RuntimeError("value written to the cache was not read back")
    cache.delete(key)
    if cache.get(key) is not None:
        raise RuntimeError("value deleted from the cache was still read back")
    if not (memory and settings.REDIS_URL):
        return ProbeResult(True, facts={"redis": bool(settings.REDIS_URL)})
    info = get_redis_connection("default").info("memory")
    facts = {
        "redis": True,
        "used_memory": int(info["used_memory"]),
        "maxmemory": int(info.get("maxmemory", 0)),
        "maxmemory_policy": str(info.get("maxmemory_policy", "?")),
    }
    return ProbeResult(True, facts=facts)


@probe
def probe_broker(timeout: float) -> ProbeResult:
    """The Celery broker accepts a connection (a PING for Redis; its folder for the filesystem)."""
    url = celery_app.conf.broker_url or ""
    transport = url.split(":", 1)[0]
    if transport == "filesystem":
        folder = settings.BROKER_DIR / "queue"
        if not folder.is_dir():
            raise RuntimeError(f"broker folder {folder} does not exist")
        return ProbeResult(True, detail="filesystem broker", facts={"transport": transport})
    if transport in ("redis", "rediss", "unix"):
        # kombu's ensure_connection bounds the retries, not a PING that never comes back.
        client = redis.Redis.from_url(url, socket_connect_timeout=timeout, socket_timeout=timeout)
        try:
            client.ping()
        finally:
            client.close()
        return ProbeResult(True, facts={"transport": transport})
    options = {"read_timeout": timeout, "write_timeout": timeout}
    with Connection(url, connect_timeout=timeout, transport_options=options) as conn:
        conn.ensure_connection(max_retries=1, timeout=timeout)
    return ProbeResult(True, facts={"transport": transport})


@probe
def probe_workers(timeout: float) -> ProbeResult:
    """The Celery workers that answer a ping within `timeout` (facts["workers"], sorted)."""
    if (celery_app.conf.broker_url or "").startswith("filesystem"):
        return ProbeResult(
            False, detail="cannot ping workers over the filesystem broker", facts={"workers": [], "pingable": False}
        )
    replies = celery_app.control.ping(timeout=timeout) or []
    names = sorted(name for reply in replies for name in reply)
    detail = f"{len(names)} answered: {', '.join(names)}" if names else "no worker answered a ping"
    return ProbeResult(bool(names), detail=detail, facts={"workers": names, "pingable": True})


def _existing(path: Path) -> Path:
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


@probe
def probe_disk(path: Path) -> ProbeResult:
    """The size and free bytes of the file system `path` lives on (or would, once created)."""
    usage = shutil.disk_usage(_existing(path))
    facts = {"path": str(path), "total_bytes": usage.total, "free_bytes": usage.free}
    return ProbeResult(True, detail=f"{path}: {usage.free / 1073741824:.1f} GiB free", facts=facts)
