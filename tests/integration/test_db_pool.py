"""DB_POOL_MAX_SIZE sizes PostgreSQL's connection pool (SQLite has none): moved from tests/unit."""

from __future__ import annotations

from tests.support.procs import manage_shell


def test_db_pool_max_size_sizes_the_pool_and_is_exported():
    code = (
        "from django.db import connection; from prometheus_client import REGISTRY; "
        "from deia.metrics import update_pool_gauges; connection.ensure_connection(); update_pool_gauges(); "
        "print(connection.pool.max_size, REGISTRY.get_sample_value('deia_db_pool_max'))"
    )
    result = manage_shell(code, {"DB_POOL_MAX_SIZE": "7"})
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["7", "7.0"]
