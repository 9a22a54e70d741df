"""Processes, ports and waiting: helpers the integration and e2e tests share."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx

# pid_alive is bots.lifecycle.process.pid_alive, not imported: bench/ imports this before django.setup().

ROOT = Path(__file__).resolve().parents[2]
PYTHON = sys.executable


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def port_is_open(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex((host, port)) == 0


def wait_for(predicate: Callable[[], Any], timeout: float = 10.0, interval: float = 0.05, what: str = "") -> Any:
    """Poll `predicate` until it returns something truthy; fail with `what` at the deadline."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            result = predicate()
            if result:
                return result
        except Exception as exc:  # the condition may raise until it holds
            last_error = exc
        time.sleep(interval)
    raise AssertionError(
        f"timed out after {timeout:g} s waiting for {what or predicate}" + (f": {last_error!r}" if last_error else "")
    )


class Proc:
    """A child process in its own session; stop() takes down its whole process group."""

    def __init__(self, args: list[str], env: dict[str, str], log_path: Path, cwd: Path = ROOT, **popen: Any):
        """`popen` goes to subprocess.Popen as is (user=, group=, extra_groups= to run as a unit's User)."""
        self.args = args
        self.log_path = log_path
        self._log = open(log_path, "ab")  # noqa: SIM115 - closed in stop()
        self.popen = subprocess.Popen(
            args, env=env, cwd=cwd, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True, **popen
        )

    @property
    def pid(self) -> int:
        return self.popen.pid

    def running(self) -> bool:
        return self.popen.poll() is None

    def signal(self, sig: int) -> None:
        try:
            os.killpg(self.popen.pid, sig)
        except ProcessLookupError:
            pass

    def stop(self, grace: float = 10.0) -> int | None:
        if self.running():
            self.signal(signal.SIGTERM)
            try:
                self.popen.wait(grace)
            except subprocess.TimeoutExpired:
                self.signal(signal.SIGKILL)
                self.popen.wait(5)
        # Children that outlived their parent in the same group.
        self.signal(signal.SIGKILL)
        self._log.close()
        return self.popen.returncode

    def output(self) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace")


def manage_shell(code: str, env_changes: dict[str, str | None]) -> subprocess.CompletedProcess:
    """`manage.py shell -c code` in a child whose environment is ours with env_changes (None: unset)."""
    env = {k: v for k, v in os.environ.items() if k not in env_changes}
    env.update({k: v for k, v in env_changes.items() if v is not None})
    args = [PYTHON, "manage.py", "shell", "-v", "0", "-c", code]
    return subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)


def http_ok(url: str, **kwargs: Any) -> bool:
    try:
        return httpx.get(url, timeout=1.0, **kwargs).status_code < 500
    except httpx.HTTPError:
        return False


class HangingServer:
    """Accepts TCP connections and never answers: the worst kind of dependency."""

    def __init__(self) -> None:
        import threading

        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.clients: list[socket.socket] = []
        self._stop = False
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self) -> None:
        self.sock.settimeout(0.2)
        while not self._stop:
            try:
                client, _ = self.sock.accept()
                self.clients.append(client)
            except OSError:
                continue

    def close(self) -> None:
        self._stop = True
        self.thread.join(2)
        for client in self.clients:
            client.close()
        self.sock.close()


def error_lines(stderr: str) -> list[str]:
    """A command's stderr without its log lines (JSON objects): what it says as an error.

    One-shot manage.py commands log to stderr (their stdout is their result alone), so a
    failing job's log line may precede its one-line error.
    """
    return [line for line in stderr.strip().splitlines() if not line.startswith("{")]


def live_processes() -> Iterator[tuple[int, list[str]]]:
    """(pid, the fields of /proc/<pid>/stat after the command) of each live, not zombie, process."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[0] != "Z":
            yield int(entry.name), fields


def children(pid: int) -> set[int]:
    """The live child processes of `pid`."""
    return {child for child, fields in live_processes() if int(fields[1]) == pid}
