"""A runner is recognised by its process title before its environment (a forked runner's is its template's)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator

import pytest
from django.db import connection

from bots.lifecycle import template
from bots.lifecycle.process import TAG_VAR, is_runner, process_tag, runner_pids, runner_tag

# Takes a title, then waits for stdin to close.
TITLED = (
    "import setproctitle, sys; sys.argv[1] and setproctitle.setproctitle(sys.argv[1]); "
    "print('ok', flush=True); sys.stdin.read()"
)


@pytest.fixture
def titled(settings) -> Iterator:
    """titled(title, tag_in_environment) -> pid of a process in its own session with that title ("": none)."""
    settings.HOSTNAME = "unit-host"
    procs: list[subprocess.Popen] = []

    def start(title: str, env_tag: str) -> int:
        env = {**os.environ, TAG_VAR: env_tag}
        proc = subprocess.Popen(
            [sys.executable, "-c", TITLED, title],
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            start_new_session=True,
        )
        procs.append(proc)
        assert proc.stdout.readline() == b"ok\n"
        return proc.pid

    yield start
    for proc in procs:
        proc.stdin.close()
        proc.wait(10)


def test_a_titled_runner_is_recognised_by_its_title_not_its_templates_environment(titled):
    pid = titled(f"deia-runner {runner_tag(7)} --port 8001", runner_tag("template"))
    assert process_tag(pid) == runner_tag(7)
    assert is_runner(pid, 7) and not is_runner(pid, 8)
    assert runner_pids(7) == {pid: 7}


def test_the_template_is_no_bots_runner(titled):
    pid = titled(f"deia-runner-template {runner_tag('template')}", runner_tag("template"))
    assert process_tag(pid) == runner_tag("template")
    assert pid not in runner_pids()


def test_an_exec_runner_without_a_title_is_still_recognised_by_its_environment(titled):
    pid = titled("", runner_tag(9))
    assert process_tag(pid) == runner_tag(9)
    assert is_runner(pid, 9) and runner_pids(9) == {pid: 9}


def test_the_fingerprint_changes_with_a_runner_setting_and_ignores_the_tag_and_the_secret(settings):
    env = {"BOT_CHAT_TIMEOUT": "60", "DATABASE_URL": "sqlite:///x", TAG_VAR: "a/b/template"}
    same = template.fingerprint({**env, TAG_VAR: "c/d/template", "DEIA_BOT_SECRET": "s"})
    assert template.fingerprint(env) == same
    assert template.fingerprint({**env, "BOT_CHAT_TIMEOUT": "90"}) != same
    assert connection.settings_dict["NAME"] in runner_tag("template")
