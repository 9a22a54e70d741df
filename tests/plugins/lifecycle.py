"""Shared fixtures of the lifecycle suites (registered in tests/conftest.py).

- `no_runner_template_in_the_test_process` (autouse): in-process starts exec their runners.
- `fake_ollama`: a started fake Ollama server (tests/fakes/ollama.py) with .url and knobs.
- `bot_worker`, `reconcile_ticker`: real Celery workers on simulated hosts, and beat's stand-in.
- `stubborn_runner_env(env)`: extra worker env whose runners ignore SIGTERM.
- `runner`: runner(bot, **env) starts `manage.py runbot <bot> --port N` on a free port and
  returns its base URL (a str with .proc, .port and .auth, the headers /chat requires),
  stopped at teardown.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import pytest

from tests.fakes.ollama import FakeOllama
from tests.support.procs import PYTHON, Proc, free_port, http_ok, wait_for


@pytest.fixture(autouse=True)
def no_runner_template_in_the_test_process(settings) -> None:
    """Lifecycle code run inside pytest execs its runners: a template it started would outlive
    the session. Workers (`bot_worker`) fork theirs; the template's tests call it directly."""
    settings.BOT_RUNNER_TEMPLATE = False


@pytest.fixture
def fake_ollama() -> Iterator[FakeOllama]:
    fake = FakeOllama().start()
    yield fake
    fake.stop()


class RunnerURL(str):
    """The runner's base URL; .proc is its process, .port its port, .auth its secret's header."""

    proc: Proc
    port: int
    auth: dict[str, str]


@pytest.fixture
def runner(request, spawn, child_env):
    """runner(bot, wait=True, **env) -> base URL of a real runner process for the bot.

    An Ollama bot talks to the `fake_ollama` fixture unless OLLAMA_URL is given.
    """

    def start(bot, wait: bool = True, **extra_env: str) -> RunnerURL:
        port = free_port()
        secret = secrets.token_urlsafe(16)
        env = {
            **child_env,
            "DB_POOL_MAX_SIZE": "4",
            "BOT_BIND_HOST": "127.0.0.1",
            "DEIA_BOT_SECRET": secret,
            **extra_env,
        }
        if "OLLAMA_URL" not in extra_env and bot.backend == "ollama":
            env["OLLAMA_URL"] = request.getfixturevalue("fake_ollama").url
        if "OPENAI_URL" not in extra_env and bot.backend == "openai":
            env["OPENAI_URL"] = request.getfixturevalue("fake_ollama").url + "/v1"
        proc = spawn([PYTHON, "manage.py", "runbot", str(bot.pk), "--port", str(port)], env, f"runner-{bot.slug}")
        url = RunnerURL(f"http://127.0.0.1:{port}")
        url.proc, url.port, url.auth = proc, port, {"X-Bot-Secret": secret}
        if wait:
            wait_for(lambda: http_ok(f"{url}/health") or not proc.running(), timeout=30, what=f"runner {bot.slug}")
            assert proc.running(), proc.output()
        return url

    return start


# --- lifecycle: real Celery workers and the bots they start ------------------------------
# Small timeouts so crash, backoff and stop paths run in seconds, not minutes.
LIFECYCLE_ENV = {
    "BOT_START_TIMEOUT": "10",
    "BOT_STOP_GRACE": "2",
    "BOT_BACKOFF_BASE": "0.2",
    "BOT_BACKOFF_CAP": "2",
    "BOT_MAX_START_RETRIES": "4",
    "BOT_HEARTBEAT_INTERVAL": "0.5",
    "BOT_HEARTBEAT_STALE": "3",
    "BOT_RECONCILE_INTERVAL": "1",
    "BOT_BIND_HOST": "127.0.0.1",
    "LOG_LEVEL": "INFO",
}


def stubborn_runner_env(base: dict[str, str]) -> dict[str, str]:
    """Worker env whose runners ignore SIGTERM and keep a child in their group (see stubborn/)."""
    import os
    from pathlib import Path

    hook = str(Path(__file__).resolve().parents[1] / "integration" / "lifecycle" / "stubborn")
    path = os.pathsep.join(p for p in (hook, base.get("PYTHONPATH", "")) if p)
    # Exec'd runners: the hook acts at interpreter start-up, which a forked runner does not have.
    return {"PYTHONPATH": path, "DEIA_TEST_STUBBORN_RUNNER": "1", "BOT_RUNNER_TEMPLATE": "false"}


def kill_test_runners(database: str | None = None) -> list[int]:
    """Kill every runner process group of this test database (or of `database`), on any simulated host."""
    import os
    import signal

    from django.db import connection

    from bots.lifecycle.process import pid_alive, process_tag

    marker = f"/{database or connection.settings_dict['NAME']}/"
    killed = []
    for entry in os.listdir("/proc"):
        if entry.isdigit() and marker in (process_tag(int(entry)) or "") and pid_alive(int(entry)):
            try:
                os.killpg(os.getpgid(int(entry)), signal.SIGKILL)
                killed.append(int(entry))
            except ProcessLookupError:
                pass
    return killed


class Worker:
    """A real `celery worker` consuming `bots` (and, through bots.tasks, host.<name>)."""

    def __init__(self, proc: Proc, name: str, env: dict[str, str]):
        self.proc, self.name, self.env = proc, name, env

    def kill(self) -> None:
        """SIGKILL the worker and its pool (not the bots: they run in their own sessions)."""
        import signal

        self.proc.signal(signal.SIGKILL)
        self.proc.popen.wait(10)


@pytest.fixture
def bot_worker(spawn, child_env, redis_client, fake_ollama, tmp_path):
    """bot_worker(name="host-a", concurrency=4, **env) -> Worker, ready to take tasks.

    Bots it starts talk to `fake_ollama` and log under tmp_path/log. At teardown the
    workers stop first, then every runner of the test database is killed.
    """
    workers: list[Worker] = []

    def start(name: str = "host-a", concurrency: int = 4, **extra_env: str) -> Worker:
        env = {
            **child_env,
            **LIFECYCLE_ENV,
            "DEIA_HOSTNAME": name,
            "OLLAMA_URL": fake_ollama.url,
            "LOG_DIR": str(tmp_path / "log"),
            **extra_env,
        }
        args = [PYTHON, "-m", "celery", "-A", "deia", "worker", "-Q", "bots", "-c", str(concurrency)]
        args += ["--pool=prefork", "-n", f"{name}@%h", "--without-gossip", "--without-mingle", "-l", "INFO"]
        proc = spawn(args, env, f"worker-{name}")
        wait_for(lambda: " ready." in proc.output() or not proc.running(), timeout=60, what=f"worker {name} ready")
        assert proc.running(), proc.output()
        worker = Worker(proc, name, env)
        workers.append(worker)
        return worker

    yield start
    for worker in workers:
        worker.proc.stop(grace=0)  # killed: its warm shutdown takes seconds and the test is over
    kill_test_runners()


@pytest.fixture
def reconcile_ticker():
    """Stands in for beat: enqueues bots.tasks.reconcile_all every `interval` s through Redis."""
    import threading

    from deia.celery import app

    stop = threading.Event()

    def tick(interval: float = 0.5, broker_url: str | None = None) -> None:
        """broker_url: a broker other than the test process's own (settings.CELERY_BROKER_URL)."""
        # Not set as current: the test process's own tasks keep the project's app and broker.
        sender = app if broker_url is None else type(app)("reconcile-ticker", broker=broker_url, set_as_current=False)

        def loop() -> None:
            while not stop.is_set():
                sender.send_task("bots.tasks.reconcile_all", queue="bots")
                stop.wait(interval)

        threading.Thread(target=loop, daemon=True, name="reconcile-ticker").start()

    yield tick
    stop.set()
