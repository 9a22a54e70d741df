"""Shared fixtures of the maintenance suites (registered in tests/conftest.py)."""

from __future__ import annotations

import os
import sqlite3
import subprocess
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import psycopg
import pytest

from tests.support.procs import PYTHON, ROOT, free_port, wait_for


@pytest.fixture
def backup_dir(settings, tmp_path: Path) -> Path:
    """BACKUP_DIR of this test (the folder itself is created by the first backup)."""
    settings.BACKUP_DIR = tmp_path / "backups"
    return settings.BACKUP_DIR


@pytest.fixture
def tmpfs(tmp_path: Path) -> Iterator:
    """tmpfs(size, read_only=False) -> a real small filesystem, unmounted at teardown.

    Root ignores file permissions, so a full or read-only folder has to be a filesystem
    that really is full or mounted read-only.
    """
    mounts: list[Path] = []

    def mount(size: str = "64k", *, read_only: bool = False) -> Path:
        point = tmp_path / f"tmpfs-{len(mounts)}"
        point.mkdir()
        options = f"size={size},mode=0755" + (",ro" if read_only else "")
        subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(point)], check=True)
        mounts.append(point)
        return point

    yield mount
    for point in reversed(mounts):
        subprocess.run(["umount", "-l", str(point)], check=False)


def fill(folder: Path) -> None:
    """Write until the filesystem holding `folder` has no byte left."""
    try:
        with (folder / "filler").open("wb") as f:
            while True:
                f.write(b"\0" * 4096)
                f.flush()
    except OSError:
        pass


@pytest.fixture
def pg_session(child_env) -> Iterator:
    """pg_session(dbname=None, name=...) -> an extra autocommit psycopg connection, closed at teardown."""
    from django.db import connection

    db = connection.settings_dict
    opened: list[psycopg.Connection] = []

    def open_session(dbname: str | None = None, name: str = "deia-test-session") -> psycopg.Connection:
        conn = psycopg.connect(
            dbname=dbname or db["NAME"],
            user=db["USER"],
            password=db["PASSWORD"],
            host=db["HOST"],
            port=db["PORT"] or 5432,
            autocommit=True,
            application_name=name,
        )
        opened.append(conn)
        return conn

    yield open_session
    for conn in opened:
        try:
            conn.cancel()
        except Exception:
            pass
        conn.close()


@pytest.fixture
def redis_server(spawn, tmp_path: Path):
    """redis_server(*args) -> URL of a Redis of this test's own (its config is ours to choose)."""

    def start(*args: str) -> str:
        port = free_port()
        data = tmp_path / f"redis-{port}"
        data.mkdir()
        argv = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--dir", str(data), *args]
        proc = spawn(argv, {}, f"redis-{port}")
        import redis

        client = redis.Redis(port=port, socket_connect_timeout=0.5)
        wait_for(lambda: proc.running() and client.ping(), timeout=10, what=f"redis-server on {port}")
        client.close()
        return f"redis://127.0.0.1:{port}/0"

    return start


@pytest.fixture
def maintenance_worker(spawn):
    """maintenance_worker(env) -> a real worker on queues bots and maintenance, answering pings."""

    def start(env: dict[str, str], name: str = "maint") -> None:
        args = [PYTHON, "-m", "celery", "-A", "deia", "worker", "-Q", "bots,maintenance", "-c", "1"]
        return spawn([*args, "-n", f"{name}@%h", "--without-mingle", "--without-gossip"], env, f"worker-{name}")

    return start


def metric(name: str, **labels: str) -> float | None:
    """A stored metric's value (None when never written)."""
    from deia.models import MetricValue

    key = ",".join(f"{k}={labels[k]}" for k in sorted(labels))
    row = MetricValue.objects.filter(name=name, labels=key).first()
    return None if row is None else row.value


class SqliteInstall:
    """An installation on the embedded default: SQLite file, no Redis, folders in tmp_path."""

    def __init__(self, tmp_path: Path):
        self.db = tmp_path / "deia.sqlite3"
        self.backups = tmp_path / "backups"
        env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "CELERY_BROKER_URL", "BACKUP_DIR")}
        self.env = {
            **env,
            "DATABASE_URL": f"sqlite:///{self.db}",
            "DEIA_VAR_DIR": str(tmp_path / "var"),
            "BACKUP_DIR": str(self.backups),
        }
        self.env.pop("PROMETHEUS_MULTIPROC_DIR", None)

    def manage(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [PYTHON, "manage.py", *args], cwd=ROOT, env=self.env, capture_output=True, text=True, timeout=120
        )

    def ok(self, *args: str) -> str:
        done = self.manage(*args)
        assert done.returncode == 0, f"manage.py {' '.join(args)}: {done.stderr}"
        return done.stdout

    def shell(self, code: str) -> str:
        return self.ok("shell", "-v", "0", "-c", code)

    def count(self, table: str) -> int:
        with closing(sqlite3.connect(self.db)) as conn:
            return conn.execute(f'SELECT count(*) FROM "{table}"').fetchone()[0]  # noqa: S608 - our table names


@pytest.fixture
def sqlite_install(tmp_path: Path) -> SqliteInstall:
    """A migrated SQLite installation in tmp_path, driven through manage.py subprocesses."""
    install = SqliteInstall(tmp_path)
    install.ok("migrate", "-v", "0")
    return install
