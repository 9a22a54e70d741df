"""PostgreSQL plumbing for the maintenance jobs: client binaries, credentials, connections.

Credentials reach pg_dump/pg_restore through the child's environment (PGPASSWORD), never
through argv, which every user of the machine can read with `ps`.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import psycopg
from django.conf import settings
from django.db import connections

from ops.maintenance.runs import JobFailed


@dataclass(frozen=True)
class Target:
    """Where the application's database lives, read from Django's connection settings."""

    name: str
    user: str
    password: str
    host: str
    port: str

    @classmethod
    def default(cls) -> Target:
        """The application's database; behind PgBouncer, PostgreSQL itself (DATABASE_DIRECT_URL):
        pg_dump sets session parameters and the restore check creates a database."""
        db = settings.DATABASE_DIRECT or connections["default"].settings_dict
        return cls(
            name=db["NAME"],
            user=db.get("USER") or "",
            password=db.get("PASSWORD") or "",
            host=db.get("HOST") or "",
            port=str(db.get("PORT") or "5432"),
        )

    def args(self, dbname: str | None = None) -> list[str]:
        """Connection options for a client binary: no password among them."""
        args = ["--host", self.host, "--port", self.port, "--dbname", dbname or self.name]
        return [*args, "--username", self.user] if self.user else args

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        env["PGCONNECT_TIMEOUT"] = "10"
        env["PGAPPNAME"] = "deia-maintenance"
        if self.password:
            env["PGPASSWORD"] = self.password
        return env

    def connect(self, dbname: str | None = None, *, autocommit: bool = False) -> psycopg.Connection:
        return psycopg.connect(
            dbname=dbname or self.name,
            user=self.user or None,
            password=self.password or None,
            host=self.host or None,
            port=self.port,
            autocommit=autocommit,
            connect_timeout=10,
            application_name="deia-maintenance",
        )


def binary(name: str) -> str:
    folder = settings.PG_BIN_DIR
    path = str(Path(folder) / name) if folder else shutil.which(name)
    if not path or not os.access(path, os.X_OK):
        raise JobFailed(f"{name} not found (install postgresql-client or set PG_BIN_DIR)")
    return path


def run_client(name: str, args: list[str], target: Target, *, timeout: float | None = None) -> str:
    """Run pg_dump/pg_restore/...; a non-zero exit is a JobFailed with the tool's last words."""
    timeout = settings.MAINTENANCE_COMMAND_TIMEOUT if timeout is None else timeout
    try:
        done = subprocess.run(
            [binary(name), *args],
            env=target.env(),
            capture_output=True,
            text=True,
            # A damaged archive's bytes can end up in the tool's messages: never fail on them.
            errors="replace",
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise JobFailed(f"{name} did not finish within {timeout:g} s") from None
    if done.returncode != 0:
        lines = [line for line in done.stderr.strip().splitlines() if line.strip()]
        raise JobFailed(
            f"{name} failed: {lines[-1] if lines else f'exit {done.returncode}'}", {"stderr": done.stderr[-2000:]}
        )
    return done.stdout


def require_postgres(job: str) -> None:
    if not settings.DATABASE_IS_POSTGRES:
        raise JobFailed(f"{job} needs PostgreSQL; this installation uses SQLite")
