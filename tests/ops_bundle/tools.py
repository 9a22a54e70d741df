"""Paths and helpers of the ops bundle checks (tools, processes, waiting)."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
RUNBOOKS = REPO / "docs" / "runbooks"


def require_tool(name: str) -> str:
    path = shutil.which(name) or (f"/usr/bin/{name}" if Path(f"/usr/bin/{name}").exists() else None)
    if path is None:
        pytest.fail(
            f"{name} is not installed; install it (apt-get install --no-install-recommends "
            "prometheus prometheus-alertmanager systemd) — these checks never skip"
        )
    return path


def run(args: list[str], *, cwd: Path | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=timeout)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until_ready(url: str, proc: subprocess.Popen, deadline_s: float = 20.0) -> None:
    """Poll url until it answers 200, the process dies, or the deadline passes."""
    deadline = time.monotonic() + deadline_s
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before {url} was ready")
        try:
            with urllib.request.urlopen(url, timeout=1) as resp:
                if resp.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError) as exc:
            last_error = exc
        # Back off a little between polls; readiness is decided by the poll, not the wait.
        proc_wait_briefly(proc)
    raise TimeoutError(f"{url} not ready after {deadline_s}s: {last_error}")


def proc_wait_briefly(proc: subprocess.Popen) -> None:
    try:
        proc.wait(timeout=0.1)
    except subprocess.TimeoutExpired:
        pass
