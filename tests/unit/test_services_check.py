"""Which tests need the services, and the one line that names a missing one (no service needed here)."""

from __future__ import annotations

import pytest

from tests.support.procs import ROOT, free_port
from tests.support.services import ServiceMissing, check_postgres, check_redis, needs_services

PASSWORD = "s3cret-pw"


@pytest.mark.parametrize("folder", ["integration", "e2e", "ops_bundle", "docs", "install", "a_package_added_later"])
def test_every_test_outside_tests_unit_needs_the_services(folder):
    assert needs_services(ROOT / "tests" / folder / "test_something.py")
    assert needs_services(ROOT / "tests" / folder / "unit" / "test_something.py")


def test_a_test_under_tests_unit_needs_none():
    assert not needs_services(ROOT / "tests" / "unit" / "test_something.py")
    assert not needs_services(ROOT / "tests" / "unit" / "deeper" / "test_something.py")


def test_a_unit_test_carries_no_services_marker(request):
    assert request.node.get_closest_marker("services") is None


def test_sqlite_is_not_postgresql():
    with pytest.raises(ServiceMissing, match=r"^PostgreSQL: DATABASE_URL must point at PostgreSQL"):
        check_postgres({"ENGINE": "django_prometheus.db.backends.sqlite3", "NAME": ":memory:"})


def test_postgresql_not_answering_is_named_with_its_address_and_no_password():
    port = free_port()  # released again: nothing listens there
    engine = "django_prometheus.db.backends.postgresql"
    database = {"ENGINE": engine, "HOST": "127.0.0.1", "PORT": port, "USER": "deia", "PASSWORD": PASSWORD}
    with pytest.raises(ServiceMissing) as missing:
        check_postgres(database, timeout=1)
    assert str(missing.value).startswith(f"PostgreSQL at 127.0.0.1:{port} is not answering: ")
    assert PASSWORD not in str(missing.value) and "\n" not in str(missing.value)


def test_redis_unset_is_named():
    with pytest.raises(ServiceMissing, match=r"^Redis: REDIS_URL must be set"):
        check_redis(None)


def test_redis_not_answering_is_named_with_its_address_and_no_password():
    port = free_port()
    with pytest.raises(ServiceMissing) as missing:
        check_redis(f"redis://:{PASSWORD}@127.0.0.1:{port}/9", timeout=1)
    assert str(missing.value).startswith(f"Redis at redis://:***@127.0.0.1:{port}/9 is not answering: ")
    assert PASSWORD not in str(missing.value) and "\n" not in str(missing.value)
