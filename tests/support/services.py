"""The services every test outside tests/unit needs, checked once per run.

Which tests need them is decided by directory: everything but tests/unit (so a new test
package needs services unless it is put under tests/unit). A missing service fails those
tests with one line naming it; it never skips them. The unit tests need none: `make
test-unit` runs them on SQLite and the local-memory cache.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import psycopg
import redis

from deia.redact import redact

UNIT_TESTS = Path(__file__).resolve().parents[1] / "unit"


class ServiceMissing(Exception):
    """A service the tests need is not configured or not answering; str() is one line naming it."""


def one_line(message: str) -> str:
    """Drivers' messages span lines and URLs carry passwords."""
    return redact(" ".join(message.split()))


def needs_services(test_file: Path) -> bool:
    return UNIT_TESTS not in test_file.resolve().parents


def check_postgres(database: Mapping, timeout: int = 2) -> None:
    if "postgresql" not in database["ENGINE"]:
        raise ServiceMissing("PostgreSQL: DATABASE_URL must point at PostgreSQL for this test (make test sets it)")
    port = database.get("PORT") or 5432
    try:
        # The server's own database, which Django uses to create the test database.
        psycopg.connect(
            host=database["HOST"],
            port=port,
            user=database.get("USER"),
            password=database.get("PASSWORD"),
            dbname="postgres",
            connect_timeout=timeout,
        ).close()
    except psycopg.Error as exc:
        raise ServiceMissing(one_line(f"PostgreSQL at {database['HOST']}:{port} is not answering: {exc}")) from None


def check_redis(url: str | None, timeout: int = 2) -> None:
    if not url:
        raise ServiceMissing("Redis: REDIS_URL must be set for this test (make test sets it)")
    client = redis.Redis.from_url(url, socket_connect_timeout=timeout)
    try:
        client.ping()
    except redis.RedisError as exc:
        raise ServiceMissing(one_line(f"Redis at {url} is not answering: {exc}")) from None
    finally:
        client.close()


def check_services(database: Mapping, redis_url: str | None) -> None:
    """Raise ServiceMissing for the first of PostgreSQL and Redis that is missing."""
    check_postgres(database)
    check_redis(redis_url)
