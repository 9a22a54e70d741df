"""The lifecycle's state machine: the table, the one writer of status, and the doc that prints the table."""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import pytest

from bots.lifecycle.machine import ALLOWED, TRANSITIONS, Event, IllegalTransition, Outcome, markdown_table, move
from bots.models import Bot, Status
from deia.models import AuditLog

ROOT = Path(__file__).resolve().parents[2]

# Assignments to a `.status` that is not a bot's: (file, the object assigned to).
NOT_A_BOT = {
    ("bots/runner/app.py", "reply"),  # the HTTP status of a runner's answer
    ("bots/runner/app.py", "self"),  # the same, inside the reply class
    ("ops/maintenance/recording.py", "run"),  # a maintenance run's result
}


@pytest.mark.django_db
def test_move_refuses_a_transition_the_table_does_not_allow_and_writes_nothing():
    bot = Bot.objects.create(name="Idle", slug="idle")
    before = Bot.objects.values().get(pk=bot.pk)
    bot.pid = 4242
    with pytest.raises(IllegalTransition, match=r"'idle': started may not take it from stopped to running"):
        move(bot, Event.STARTED, Status.RUNNING, ["pid"])
    assert bot.status == Status.STOPPED
    assert Bot.objects.values().get(pk=bot.pk) == before
    assert not AuditLog.objects.exists()


@pytest.mark.django_db
def test_move_refuses_an_event_that_does_not_lead_to_the_target_even_if_another_does():
    bot = Bot.objects.create(name="Up", slug="up")
    Bot.objects.filter(pk=bot.pk).update(status=Status.RUNNING)
    bot.refresh_from_db()
    with pytest.raises(IllegalTransition):
        move(bot, Event.STOP, Status.STOPPED)  # stopped is reached by the event "stopped", not "stop"
    bot.refresh_from_db()
    assert bot.status == Status.RUNNING


@pytest.mark.django_db
def test_move_writes_an_allowed_transition_with_the_fields_it_is_given():
    bot = Bot.objects.create(name="Go", slug="go")
    bot.port = 18499
    bot.last_error = "not saved: not in the fields"
    move(bot, Event.CLAIM, Status.STARTING, ["port"])
    bot.refresh_from_db()
    assert (bot.status, bot.port, bot.last_error) == (Status.STARTING, 18499, "")


def test_every_status_can_be_left_and_reached_and_allowed_is_the_table_read_by_status():
    for status in Status:
        assert ALLOWED[status], f"{status} has no way out"
        assert any(status in t.targets for t in TRANSITIONS), f"{status} cannot be reached"
    pairs = {(s, e, t) for s, nexts in ALLOWED.items() for t, events in nexts.items() for e in events}
    table = {(s, t.event, target) for t in TRANSITIONS for s in t.sources for target in t.targets}
    assert pairs == table


def test_outcomes_are_the_plain_strings_tasks_return_and_logs_show():
    assert Outcome.NOT_DUE == "not due" and Outcome.PORT_RACE == "port race"
    assert json.dumps({Outcome.ORPHANS_KILLED: 1, "result": Outcome.SUPERSEDED}) == (
        '{"orphans_killed": 1, "result": "superseded"}'
    )


def test_the_architecture_doc_prints_the_table_the_code_holds():
    doc = (ROOT / "docs" / "ARCHITECTURE.md").read_text()
    found = re.search(r"<!-- lifecycle-table:start -->\n(.*?)\n<!-- lifecycle-table:end -->", doc, re.S)
    assert found, "docs/ARCHITECTURE.md lost its lifecycle table markers"
    assert found.group(1) == markdown_table()


def _status_writes(path: Path) -> list[tuple[str, int]]:
    """(object, line) of each `X.status = ...` and each `.update(status=...)` in a module."""
    writes = []
    for node in ast.walk(ast.parse(path.read_text())):
        targets = node.targets if isinstance(node, ast.Assign) else []
        if isinstance(node, ast.AugAssign | ast.AnnAssign):
            targets = [node.target]
        writes += [(ast.unparse(t.value), node.lineno) for t in targets if getattr(t, "attr", None) == "status"]
        if isinstance(node, ast.Call) and getattr(node.func, "attr", None) in ("update", "bulk_update"):
            writes += [("update()", node.lineno) for k in node.keywords if k.arg == "status"]
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "setattr":
            writes += [("setattr()", node.lineno) for a in node.args[1:2] if getattr(a, "value", None) == "status"]
    return writes


def test_no_code_in_bots_or_ops_writes_a_bot_status_except_move():
    found = []
    for package in ("bots", "ops"):
        for path in sorted((ROOT / package).rglob("*.py")):
            name = path.relative_to(ROOT).as_posix()
            if "/migrations/" in name or name == "bots/lifecycle/machine.py":
                continue
            found += [f"{name}:{line} {obj}" for obj, line in _status_writes(path) if (name, obj) not in NOT_A_BOT]
    assert found == []
