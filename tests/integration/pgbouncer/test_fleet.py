"""A hundred bots and the web behind PgBouncer fit in PostgreSQL's max_connections = 100.

Real processes, all through PgBouncer (DATABASE_POOLER=pgbouncer): a bots worker that forks
a hundred echo runners from its template, each heartbeating every second; gunicorn taking
the starts, the bot list and chats it relays to the runners. Meanwhile PostgreSQL's
backends for the app's database are counted ten times a second.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from tests.integration.pgbouncer.conftest import Pooled
from tests.plugins.lifecycle import kill_test_runners
from tests.support.procs import wait_for

BOTS = 100
# deploy/pgbouncer/pgbouncer.ini's max_db_connections: PgBouncer's whole share of the budget.
SERVER_BUDGET = 50
HEARTBEAT = {"BOT_HEARTBEAT_INTERVAL": "1", "BOT_HEARTBEAT_STALE": "10", "BOT_START_TIMEOUT": "30"}

CREATE_BOTS_AND_TOKEN = f"""
from deia.apitokens.tokens import create_token
from django.contrib.auth import get_user_model
from bots.models import Bot
Bot.objects.bulk_create(
    Bot(name=f"pooled-{{i}}", slug=f"pooled-{{i}}", backend="echo", model_name="echo") for i in range({BOTS})
)
admin = get_user_model().objects.create_superuser("pooled-admin", password="pooled-admin-0123456789")
print(create_token(admin, name="pgbouncer test", actor="test")[1])
"""


class Sampler:
    """The most PostgreSQL backends of the app's database seen, sampled every 0.1 s."""

    def __init__(self, pooled: Pooled) -> None:
        self.pooled, self.peak, self.samples = pooled, 0, 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True, name="pg-sampler")

    def run(self) -> None:
        while not self.stop.is_set():
            self.peak = max(self.peak, self.pooled.server_connections())
            self.samples += 1
            self.stop.wait(0.1)

    def __enter__(self) -> Sampler:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        self.thread.join(5)


@pytest.fixture
def pooled_runners_killed(pooled: Pooled):
    """Requested before bot_worker: its runners (and template) die after the worker has stopped."""
    yield
    kill_test_runners(pooled.database)


def bot_rows(pooled: Pooled) -> list[tuple]:
    with pooled.direct() as conn:
        return conn.execute(
            "SELECT id, status, last_heartbeat, last_error FROM bots_bot WHERE slug LIKE 'pooled-%%' ORDER BY id"
        ).fetchall()


def test_a_hundred_heartbeating_bots_and_the_web_stay_within_max_connections_100(
    pooled: Pooled, pooled_runners_killed, bot_worker, gunicorn, tmp_path: Path, settings
):
    env = pooled.env(MAX_BOTS=str(BOTS), LOG_DIR=str(tmp_path / "log"), **HEARTBEAT)
    t0 = time.monotonic()
    with ThreadPoolExecutor(1) as pool:  # the bots and the token are made while the services start
        made = pool.submit(pooled.manage, "shell", "-c", CREATE_BOTS_AND_TOKEN)
        worker = bot_worker("pooled-host", concurrency=8, BOT_RUNNER_TEMPLATE="true", **env)
        web = gunicorn(workers=2, **env)
        key = made.result().strip().splitlines()[-1]
    ids = [row[0] for row in bot_rows(pooled)]
    assert len(ids) == BOTS
    print(f"worker, web and bots ready in {time.monotonic() - t0:.1f} s")

    with Sampler(pooled) as sampler, httpx.Client(base_url=web, headers={"Authorization": f"Token {key}"}) as api:
        began = time.monotonic()
        with ThreadPoolExecutor(8) as pool:
            codes = list(pool.map(lambda pk: api.post(f"/api/bots/{pk}/start", timeout=30).status_code, ids))
        assert codes == [202] * BOTS

        def all_running() -> bool:
            rows = bot_rows(pooled)
            assert not [row for row in rows if row[1] in ("failed", "crashed")], rows
            return all(row[1] == "running" for row in rows)

        wait_for(all_running, timeout=150, interval=0.5, what=f"{BOTS} bots running")
        started = time.monotonic() - began
        print(f"started in {started:.1f} s")
        # Every runner beats again after all of them run: each one reaches the database.
        with pooled.direct() as conn:
            since = conn.execute("SELECT now()").fetchone()[0]
        wait_for(
            lambda: all(row[2] and row[2] > since for row in bot_rows(pooled)),
            timeout=15,
            interval=0.5,
            what="a heartbeat of every bot",
        )
        # The web answers through PgBouncer while the fleet beats: the list, and chats it relays.
        listed = api.get("/api/bots", timeout=30).json()
        assert sorted(bot["id"] for bot in listed) == ids
        with ThreadPoolExecutor(5) as pool:
            chats = list(
                pool.map(
                    lambda pk: api.post(f"/api/bots/{pk}/messages", json={"message": f"hi {pk}"}, timeout=30),
                    ids[:: BOTS // 10],
                )
            )
        assert [c.status_code for c in chats] == [200] * len(chats), [c.text for c in chats]
        assert all("hi" in c.json()["reply"] for c in chats)
        clients = [c for c in pooled.bouncer.show("CLIENTS") if c["database"] == pooled.database]

    # A connection per runner is open to PgBouncer; PostgreSQL saw no more than its share.
    assert len(clients) >= BOTS, len(clients)
    assert sampler.samples > 10
    assert 0 < sampler.peak <= SERVER_BUDGET, sampler.peak
    print(f"{BOTS} bots running in {started:.1f} s; peak {sampler.peak} server connections, {len(clients)} clients")
    # Nothing failed on the way: no heartbeat, no task, no request, no refused client.
    logs = "".join(path.read_text(errors="replace") for path in (tmp_path / "log").glob("*.log"))
    assert "heartbeat failed" not in logs
    assert "Traceback" not in worker.proc.output() + gunicorn.proc.output()
    assert " ERROR " not in pooled.bouncer.log_text(), pooled.bouncer.log_text()[-3000:]
    assert all(row[3] in ("", None) for row in bot_rows(pooled))
