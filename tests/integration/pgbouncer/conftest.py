"""The PgBouncer suites' cluster: a private PostgreSQL with max_connections = 100 (the
budget under test, and no other suite's connections in it), PgBouncer in front of it
running the shipped deploy/pgbouncer/pgbouncer.ini, and the app set up through them as
deia.env would have it (DATABASE_POOLER=pgbouncer). One for the package's tests; both
stopped after them, also when one fails.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import urlsplit

import psycopg
import pytest

from bench.support import private_postgres
from tests.support.pgbouncer import PgBouncer
from tests.support.procs import PYTHON

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))


@dataclass
class Pooled:
    direct_url: str
    bouncer: PgBouncer
    var_dir: str
    queries_after_migrate: int = -1  # what PgBouncer had passed on once `migrate` was done

    @property
    def database(self) -> str:
        return urlsplit(self.direct_url).path.lstrip("/")

    def env(self, **extra: str) -> dict[str, str]:
        """What deia.env says behind PgBouncer: the app through it, migrations and dumps past it."""
        return {
            "DATABASE_POOLER": "pgbouncer",
            "DATABASE_URL": self.bouncer.url(self.database),
            "DATABASE_DIRECT_URL": self.direct_url,
            "DEIA_VAR_DIR": self.var_dir,
            **extra,
        }

    def manage(self, *args: str, env: dict[str, str] | None = None, check: bool = True) -> str:
        """`manage.py ARGS` with the pooled settings; its stdout."""
        full = {**os.environ, **self.env(), "LOG_LEVEL": "WARNING", **(env or {})}
        full.pop("PROMETHEUS_MULTIPROC_DIR", None)
        done = subprocess.run(
            [PYTHON, "manage.py", *args], cwd=ROOT, env=full, capture_output=True, text=True, timeout=120
        )
        if check and done.returncode != 0:
            raise AssertionError(f"manage.py {' '.join(args)} exited {done.returncode}: {done.stderr[-3000:]}")
        return done.stdout

    def direct(self) -> psycopg.Connection:
        return psycopg.connect(self.direct_url, autocommit=True)

    def server_connections(self) -> int:
        """PostgreSQL backends serving clients of the app's database, this probe's own left out."""
        with self.direct() as conn:
            return conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND backend_type = 'client backend'"
                " AND pid <> pg_backend_pid()",
                [self.database],
            ).fetchone()[0]

    def bouncer_queries(self) -> int:
        """Queries PgBouncer has passed to the app's database so far."""
        rows = [row for row in self.bouncer.show("STATS") if row["database"] == self.database]
        return int(rows[0]["total_query_count"]) if rows else 0


@pytest.fixture(scope="package")
def pooled(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pooled]:
    with contextlib.ExitStack() as stack:
        direct_url = stack.enter_context(private_postgres(max_connections=100, migrate=False))
        bouncer = PgBouncer(urlsplit(direct_url).port)
        stack.callback(bouncer.stop)
        bouncer.start()
        pooled = Pooled(direct_url, bouncer, str(tmp_path_factory.mktemp("pooled-var")))
        # Past PgBouncer (deia.pooler.DIRECT_COMMANDS), as deploy/install.sh's `manage.py setup`.
        pooled.manage("migrate", "--verbosity", "0")
        pooled.queries_after_migrate = pooled.bouncer_queries()
        yield pooled
