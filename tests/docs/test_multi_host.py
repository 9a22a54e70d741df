"""The walk-through of docs/MULTI_HOST.md (two hosts on one machine) holds to the code.

Its blocks cannot run in the docs test (terminals in the foreground, a host killed), so
what they rely on is checked here: the settings it sets exist, its second host is the
Procfile's bots worker with only its name, node name and ports changed, and its kill
patterns hit the second host's worker, template and runners and nothing of the first.
"""

from __future__ import annotations

import re
import shlex

import pytest

from .names import NOT_SETTINGS, SETTING, setting_exists
from .pages import REPO, shell_blocks

PAGE = REPO / "docs" / "MULTI_HOST.md"
WALK_THROUGH = "## Walk-through"


def walk_through() -> str:
    text = PAGE.read_text()
    assert WALK_THROUGH in text, f"{PAGE.name} has no walk-through section"
    return text.split(WALK_THROUGH, 1)[1]


def commands(block_text: str) -> list[str]:
    """The block's command lines, continuations joined, comments dropped."""
    joined = re.sub(r"\\\n\s*", " ", block_text)
    return [line.split(" #", 1)[0].strip() for line in joined.splitlines() if line.strip()]


def second_host_command() -> tuple[dict[str, str], list[str]]:
    """(environment assignments, argv) of the walk-through's `celery … worker` line."""
    for block in shell_blocks(PAGE):
        for line in commands(block.text):
            words = shlex.split(line)
            assignments = {}
            while words and re.fullmatch(r"[A-Z_][A-Z0-9_]*=.*", words[0]):
                name, _, value = words.pop(0).partition("=")
                assignments[name] = value
            if words[:1] == ["celery"]:
                return assignments, words
    raise AssertionError(f"{PAGE.name}: no block starts a second bots worker with celery")


def procfile_worker() -> list[str]:
    for line in (REPO / "Procfile").read_text().splitlines():
        if line.startswith("worker:"):
            argv = shlex.split(line.removeprefix("worker:"))
            return ["celery", *argv[1:]]  # .venv/bin/celery: the walk-through puts .venv/bin on PATH
    raise AssertionError("the Procfile has no worker")


def options(argv: list[str]) -> dict[str, str]:
    return dict(word.split("=", 1) for word in argv if word.startswith("--") and "=" in word)


def port_range(value: str) -> range:
    low, high = map(int, value.split("-"))
    return range(low, high + 1)


def test_the_walk_through_names_only_settings_the_code_reads() -> None:
    named = set(SETTING.findall(walk_through())) - NOT_SETTINGS
    assert {"DEIA_HOSTNAME", "BOT_PORT_RANGE", "HOST_LEASE_SECONDS"} <= named
    unknown = sorted(name for name in named if not setting_exists(name))
    assert not unknown, f"the walk-through sets or names settings the code does not read: {unknown}"


def test_the_second_host_is_the_procfile_worker_with_its_own_name_node_name_and_ports() -> None:
    env, argv = second_host_command()
    unknown = sorted(name for name in env if not setting_exists(name))
    assert not unknown, f"the second host's command sets what the code does not read: {unknown}"
    assert env.get("DEIA_HOSTNAME") == "host-b"
    procfile = procfile_worker()
    ours, theirs = options(argv), options(procfile)
    assert ours.pop("--hostname") != theirs.pop("--hostname"), "two Celery nodes may not share a node name"
    assert ours == theirs, "apart from its node name, the second host runs the Procfile's bots worker"
    assert [w for w in argv if not w.startswith("--")] == [w for w in procfile if not w.startswith("--")]
    # make run's worker keeps the default range; the second host's may not overlap it.
    default = re.search(
        r'port_range\("BOT_PORT_RANGE", \((\d+), (\d+)\)\)', (REPO / "deia" / "settings.py").read_text()
    )
    assert default, "deia/settings.py: BOT_PORT_RANGE's default not found"
    first = range(int(default[1]), int(default[2]) + 1)
    second = port_range(env["BOT_PORT_RANGE"])
    assert not set(first) & set(second), f"host-b's ports {env['BOT_PORT_RANGE']} overlap the first host's"


@pytest.fixture
def kill_patterns() -> list[str]:
    patterns = [
        shlex.split(line)[-1]
        for block in shell_blocks(PAGE)
        for line in commands(block.text)
        if line.startswith("pkill -9 -f")
    ]
    assert len(patterns) == 2, f"expected the worker's and the runners' pkill, found {patterns}"
    return patterns


def test_the_kill_patterns_hit_the_second_host_and_nothing_of_the_first(kill_patterns, settings) -> None:
    from bots.lifecycle.process import RUNNER_TITLE, TEMPLATE_ID, TEMPLATE_TITLE, runner_tag

    def titles(host: str, node: str, ports: range) -> list[str]:
        # Process command lines as pkill -f sees them: the worker (Celery keeps its argv),
        # the host's runner template and a forked runner (their setproctitle titles).
        settings.HOSTNAME = host
        return [
            f".venv/bin/python .venv/bin/celery -A deia worker --queues=bots --hostname={node}@%h",
            f"{TEMPLATE_TITLE} {runner_tag(TEMPLATE_ID)}",
            f"{RUNNER_TITLE} {runner_tag(7)} --port {ports[0]}",
        ]

    env, argv = second_host_command()
    second = titles(env["DEIA_HOSTNAME"], options(argv)["--hostname"].split("@")[0], port_range(env["BOT_PORT_RANGE"]))
    first = titles("laptop", options(procfile_worker())["--hostname"].split("@")[0], range(8001, 8100))

    def killed(title: str) -> bool:
        return any(re.search(pattern, title) for pattern in kill_patterns)

    assert [t for t in second if not killed(t)] == [], "the kill misses part of the second host"
    assert [t for t in first if killed(t)] == [], "the kill would hit the first host"
