"""`make run` (scripts/run.sh): the whole control plane comes up, and Ctrl-C takes it all down.

The embedded variant uses no service at all (SQLite, file broker, echo backend); the other
points the same script at PostgreSQL and Redis through DATABASE_URL and REDIS_URL.
"""

from __future__ import annotations

import os
import signal
import sqlite3
from pathlib import Path

import httpx
import pytest

from bots.lifecycle.process import pid_alive
from tests.support.procs import ROOT, Proc, free_port, http_ok, live_processes, port_is_open, wait_for

SERVICE_VARIABLES = ("DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL", "SECRET_KEY", "SECRET_KEY_FILE")


def session_members(session_id: int) -> set[int]:
    """Every live process in a session: what a terminal's Ctrl-C would reach."""
    return {pid for pid, fields in live_processes() if int(fields[3]) == session_id}


def run_and_interrupt(env: dict[str, str], tmp_path: Path, demo_state) -> None:
    """Start scripts/run.sh, wait for the admin and a running demo bot, then Ctrl-C it."""
    web_port = free_port()
    env = {
        **env,
        "GUNICORN_BIND": f"127.0.0.1:{web_port}",
        "GUNICORN_WORKERS": "2",
        "DEIA_ADMIN_PASSWORD": "run-admin-pw-4812",
    }
    env["BOT_RECONCILE_INTERVAL"] = "2"
    proc = Proc(["bash", "scripts/run.sh"], env, tmp_path / "run.log", cwd=ROOT)
    bot_pid = None
    try:
        base = f"http://127.0.0.1:{web_port}"
        wait_for(lambda: http_ok(f"{base}/admin/login/") or not proc.running(), timeout=90, what="the admin")
        assert proc.running(), proc.output()
        assert httpx.get(f"{base}/admin/login/").status_code == 200
        _status, bot_pid, bot_port, secret = wait_for(
            lambda: (s := demo_state()) and s[0] == "running" and s, timeout=60, what="the demo bot running"
        )
        answer_only_us = {"X-Bot-Secret": secret}
        reply = httpx.post(f"http://127.0.0.1:{bot_port}/chat", json={"message": "hello"}, headers=answer_only_us)
        assert reply.json()["reply"] == "echo: hello"
        members = session_members(proc.pid)
        assert len(members) >= 5, members  # run.sh, honcho, gunicorn, two workers, beat ...
        # Ctrl-C: the terminal sends SIGINT to the foreground process group.
        os.killpg(proc.pid, signal.SIGINT)
        proc.popen.wait(60)
        wait_for(lambda: not any(pid_alive(p) for p in members), timeout=30, what="every process of the run to exit")
        wait_for(lambda: not pid_alive(bot_pid), timeout=30, what="the demo bot's process to exit")
        assert not port_is_open(web_port)
        assert not port_is_open(bot_port)
    finally:
        proc.stop()
        if bot_pid and pid_alive(bot_pid):
            os.killpg(bot_pid, signal.SIGKILL)


def not_owner_only(folder: Path) -> list[str]:
    """Files and folders under `folder` that its owner's group or others may read (static/ is public)."""
    found = [] if folder.stat().st_mode & 0o077 == 0 else [str(folder)]
    for path in folder.rglob("*"):
        if "static" not in path.relative_to(folder).parts[:1] and path.lstat().st_mode & 0o077:
            found.append(f"{path} {oct(path.lstat().st_mode & 0o777)}")
    return found


def test_make_run_on_embedded_defaults_comes_up_and_ctrl_c_leaves_nothing(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in SERVICE_VARIABLES}
    env["DEIA_VAR_DIR"] = str(tmp_path / "var")
    previous = os.umask(0o022)  # a careless shell's umask: the run must not depend on it

    def demo_state():
        db = tmp_path / "var" / "deia.sqlite3"
        if not db.exists():
            return None
        with sqlite3.connect(db, timeout=5) as conn:
            return conn.execute("SELECT status, pid, port, chat_secret FROM bots_bot WHERE slug = 'demo'").fetchone()

    try:
        run_and_interrupt(env, tmp_path, demo_state)
    finally:
        os.umask(previous)
    var = tmp_path / "var"
    # The database (and its -wal/-shm), the secret key, the broker folder, logs: owner-only.
    assert {"deia.sqlite3", "secret_key", "broker"} <= {p.name for p in var.iterdir()}
    assert not_owner_only(var) == []
    assert (var / "static").stat().st_mode & 0o005, "nginx serves the static files"
    with sqlite3.connect(tmp_path / "var" / "deia.sqlite3") as conn:
        status, desired = conn.execute("SELECT status, desired_state FROM bots_bot WHERE slug = 'demo'").fetchone()
    # Stopped with the run, still wanted: the next `make run` starts it again.
    assert (status, desired) == ("stopped", "running")


@pytest.mark.django_db(transaction=True)
def test_make_run_uses_postgresql_and_redis_when_their_urls_are_set(child_env, tmp_path):
    from bots.models import Bot
    from deia.models import AuditLog

    env = {k: v for k, v in child_env.items() if k not in ("SECRET_KEY_FILE",)}
    env.pop("SECRET_KEY")

    def demo_state():
        bot = Bot.objects.filter(slug="demo").first()
        return bot and (bot.status, bot.pid, bot.port, bot.chat_secret)

    run_and_interrupt(env, tmp_path, demo_state)
    assert not (tmp_path / "var" / "deia.sqlite3").exists()
    assert AuditLog.objects.filter(action="bot.started", target="demo").exists()
