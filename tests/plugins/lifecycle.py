"""Shared fixtures of the lifecycle suites (registered in tests/conftest.py).

- `fake_ollama`: a started fake Ollama server (tests/fakes/ollama.py) with .url and knobs.
- `runner`: runner(bot, **env) starts `manage.py runbot <bot> --port N` on a free port and
  returns its base URL (a str with .proc and .port), stopped at teardown.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.fakes.ollama import FakeOllama
from tests.support.procs import PYTHON, Proc, free_port, http_ok, wait_for


@pytest.fixture
def fake_ollama() -> Iterator[FakeOllama]:
    fake = FakeOllama().start()
    yield fake
    fake.stop()


class RunnerURL(str):
    """The runner's base URL; .proc is its process, .port its port."""

    proc: Proc
    port: int


@pytest.fixture
def runner(request, spawn, child_env):
    """runner(bot, wait=True, **env) -> base URL of a real runner process for the bot.

    An Ollama bot talks to the `fake_ollama` fixture unless OLLAMA_URL is given.
    """

    def start(bot, wait: bool = True, **extra_env: str) -> RunnerURL:
        port = free_port()
        env = {**child_env, "DB_POOL_MAX_SIZE": "4", "BOT_BIND_HOST": "127.0.0.1", **extra_env}
        if "OLLAMA_URL" not in extra_env and bot.backend == "ollama":
            env["OLLAMA_URL"] = request.getfixturevalue("fake_ollama").url
        if "OPENAI_URL" not in extra_env and bot.backend == "openai":
            env["OPENAI_URL"] = request.getfixturevalue("fake_ollama").url + "/v1"
        proc = spawn([PYTHON, "manage.py", "runbot", str(bot.pk), "--port", str(port)], env, f"runner-{bot.slug}")
        url = RunnerURL(f"http://127.0.0.1:{port}")
        url.proc, url.port = proc, port
        if wait:
            wait_for(lambda: http_ok(f"{url}/health") or not proc.running(), timeout=30, what=f"runner {bot.slug}")
            assert proc.running(), proc.output()
        return url

    return start
