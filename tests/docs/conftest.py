"""One running system for the docs tests: the services a page's commands talk to.

Built from the shared fixtures (tests/conftest.py, tests/plugins/): gunicorn, a Celery
bots worker with one running echo bot, a Redis of its own (so `redis-cli CONFIG SET` in a
runbook changes nobody else's), PostgreSQL, the fake Ollama, and a real Prometheus
scraping web and bot with the shipped rule files loaded. A good backup and a passed
restore check exist, as on a healthy installation, so `diagnose` says OK.
"""

from __future__ import annotations

import subprocess
import threading
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.plugins.observability import ScrapedApp, start_scraped_app
from tests.support.procs import PYTHON, ROOT

RULE_FILES = tuple(sorted((ROOT / "deploy" / "prometheus" / "rules").glob("*.yml")))


@dataclass
class DocsSystem:
    app: ScrapedApp
    env: dict[str, str]  # what a command of the docs runs with: the bots worker's environment
    ollama: str
    backup: Path  # the newest good backup
    pg_session: object
    slow_queries: list = field(default_factory=list)  # their sessions

    def manage(self, *args: str) -> str:
        done = subprocess.run(
            [PYTHON, "manage.py", *args], cwd=ROOT, env=self.env, capture_output=True, text=True, timeout=120
        )
        assert done.returncode == 0, f"manage.py {' '.join(args)}: {done.stdout}{done.stderr}"
        return done.stdout

    def slow_query_pid(self) -> int:
        """The pid of a session running a long query (`<pid>` in the runbooks)."""
        conn = self.pg_session(name="docs-test-slow-query")

        def sleep() -> None:
            try:
                conn.execute("SELECT pg_sleep(300)")
            except Exception:  # cancelled or terminated by the runbook's own commands
                pass

        threading.Thread(target=sleep, daemon=True).start()
        self.slow_queries.append(conn)
        return conn.info.backend_pid

    def end_slow_queries(self) -> None:
        while self.slow_queries:
            self.slow_queries.pop().cancel()


@pytest.fixture
def docs_system(
    gunicorn, prometheus, bot_worker, reconcile_ticker, redis_server, fake_ollama, child_env, pg_session
) -> DocsSystem:
    # A Redis of our own with a maxmemory and the policy the runbooks ask for.
    child_env["REDIS_URL"] = redis_server("--maxmemory", "64mb", "--maxmemory-policy", "volatile-lru")
    child_env.pop("CELERY_BROKER_URL", None)
    app = start_scraped_app(gunicorn, prometheus, bot_worker, RULE_FILES)
    reconcile_ticker(1, broker_url=child_env["REDIS_URL"])  # beat's reconcile, every second
    env = {**app.worker.env, "DIAGNOSE_WEB_URL": app.web}
    system = DocsSystem(app, env, fake_ollama.url, Path(), pg_session)
    system.manage("backup")
    system.manage("verify_backup")
    system.backup = max(Path(env["BACKUP_DIR"]).glob("db_*.dump"))
    return system
