"""A PgBouncer of the test's own, running deploy/pgbouncer/pgbouncer.ini with a free port,
its files in a folder of its own, and trust authentication (the private cluster trusts too).

PgBouncer refuses to run as root: as root it runs as the postgres user, its folder handed
over to that user. Started in its own session; stop() kills the session.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path

from tests.support.procs import free_port, wait_for

ROOT = Path(__file__).resolve().parents[2]
INI = ROOT / "deploy" / "pgbouncer" / "pgbouncer.ini"
BINARY = "/usr/sbin/pgbouncer"
USER = "deia"


def render(text: str, server_port: int, settings: dict[str, str]) -> str:
    """The shipped file with its [pgbouncer] `key = value` lines replaced by `settings` and
    the PostgreSQL port of [databases] set to `server_port`. A key the file lacks is an error:
    the test must run what is shipped."""
    missing = set(settings)

    def replace(match: re.Match) -> str:
        key = match.group(1)
        if key not in settings:
            return match.group(0)
        missing.discard(key)
        return f"{key} = {settings[key]}"

    text = re.sub(r"(?m)^(\w+) = .*$", replace, text)
    if missing:
        raise ValueError(f"{INI} has no {', '.join(sorted(missing))}")
    return re.sub(r"(?m)^\* = host=127\.0\.0\.1 port=\d+$", f"* = host=127.0.0.1 port={server_port}", text)


def _as_postgres(args: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *args] if os.geteuid() == 0 else args


class PgBouncer:
    def __init__(self, server_port: int, **settings: str) -> None:
        self.server_port = server_port
        self.port = free_port()
        self.folder = Path(tempfile.mkdtemp(prefix="deia-pgbouncer-"))
        self.log = self.folder / "pgbouncer.log"
        self.settings = {
            "listen_port": str(self.port),
            "unix_socket_dir": "",
            "logfile": str(self.log),
            "pidfile": str(self.folder / "pgbouncer.pid"),
            "auth_type": "trust",
            "auth_file": str(self.folder / "userlist.txt"),
            **settings,
        }
        self.proc: subprocess.Popen | None = None

    def start(self) -> PgBouncer:
        ini = self.folder / "pgbouncer.ini"
        ini.write_text(render(INI.read_text(), self.server_port, self.settings))
        (self.folder / "userlist.txt").write_text(f'"{USER}" ""\n')
        if os.geteuid() == 0:
            for path in (self.folder, *self.folder.iterdir()):
                shutil.chown(path, "postgres", "postgres")
        self.proc = subprocess.Popen(
            _as_postgres([BINARY, str(ini)]),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        wait_for(lambda: self.answers() or self.proc.poll() is not None, timeout=15, what="pgbouncer")
        if self.proc.poll() is not None:
            raise RuntimeError(f"pgbouncer exited with {self.proc.returncode}: {self.log_text()[-2000:]}")
        return self

    def answers(self) -> bool:
        try:
            self.show("VERSION")
        except subprocess.CalledProcessError:
            return False
        return True

    def url(self, database: str) -> str:
        return f"postgres://{USER}@127.0.0.1:{self.port}/{database}"

    def show(self, what: str) -> list[dict[str, str]]:
        """SHOW `what` on the admin console (simple query protocol: psql), as dicts."""
        psql = ["psql", "-h", "127.0.0.1", "-p", str(self.port), "-U", USER, "-d", "pgbouncer", "-X", "-A"]
        done = subprocess.run(
            [*psql, "-F", "\t", "--pset", "footer=off", "-c", f"SHOW {what}"],
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
            env={**os.environ, "PGCONNECT_TIMEOUT": "5"},
        )
        lines = done.stdout.splitlines()
        if not lines:
            return []
        header = lines[0].split("\t")
        return [dict(zip(header, line.split("\t"), strict=False)) for line in lines[1:]]

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGINT)  # a clean shutdown, as Debian's unit asks
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        shutil.rmtree(self.folder, ignore_errors=True)
