"""What the benchmarks share: a gunicorn of the real app, started, awaited and stopped."""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

from tests.support.procs import http_ok, wait_for

ROOT = Path(__file__).resolve().parent.parent


@contextlib.contextmanager
def gunicorn(port: int, **env_overrides: str) -> Iterator[str]:
    """Yield the base URL of gunicorn on 127.0.0.1:port with its own scratch var dir."""
    var_dir = tempfile.mkdtemp(prefix="deia-bench-")
    env = {**os.environ, "GUNICORN_BIND": f"127.0.0.1:{port}", "DEIA_VAR_DIR": var_dir, "LOG_LEVEL": "WARNING"}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    env.update(env_overrides)
    web = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-c", "deploy/gunicorn.conf.py", "deia.asgi:application"],
        cwd=ROOT,
        env=env,
        start_new_session=True,
        stdout=sys.stderr,  # its log lines are progress, not part of the Markdown section
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: http_ok(f"{base}/health"), timeout=30, what="gunicorn /health")
        yield base
    finally:
        os.killpg(web.pid, signal.SIGTERM)
        web.wait(30)
        shutil.rmtree(var_dir, ignore_errors=True)


def start_runner(bot_id: int, **env_overrides: str) -> tuple[subprocess.Popen, str, dict[str, str]]:
    """Start `manage.py runbot` for a bot on a free port: (process, base URL, /chat's headers)."""
    from tests.support.procs import free_port

    port = free_port()
    secret = secrets.token_urlsafe(16)
    env = {**os.environ, "DB_POOL_MAX_SIZE": "4", "LOG_LEVEL": "WARNING", "PYTHONUNBUFFERED": "1"}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    env.update(DEIA_BOT_SECRET=secret, **env_overrides)
    proc = subprocess.Popen(
        [sys.executable, "manage.py", "runbot", str(bot_id), "--port", str(port)],
        cwd=ROOT,
        env=env,
        start_new_session=True,
        stdout=sys.stderr,
    )
    url = f"http://127.0.0.1:{port}"
    wait_for(lambda: http_ok(f"{url}/health") or proc.poll() is not None, timeout=30, what="runner /health")
    if proc.poll() is not None:
        raise RuntimeError(f"runner exited with {proc.returncode}")
    return proc, url, {"X-Bot-Secret": secret}


def stop_process_group(proc: subprocess.Popen) -> None:
    os.killpg(proc.pid, signal.SIGTERM)
    proc.wait(30)
