"""The audit vocabulary: one declaration, every action written through it, the docs' table from it."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from deia.audit_actions import ADMIN_SUBJECTS, FAMILIES, Action, Severity, severity_of, vocabulary
from deia.redact import is_secret_name
from ops import maintenance

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "OBSERVABILITY.md"
# The functions that write an audit row, and the position of their action argument.
WRITERS = {"audit": 0, "record": 1, "record_kill": 3}


def test_every_action_has_a_dotted_name_a_severity_and_one_line_of_meaning():
    for name, severity, description in vocabulary():
        assert re.fullmatch(r"[a-z_<>]+(\.[a-z_<>]+)+", name), name
        assert severity in Severity.values, name
        assert description.endswith(".") and "\n" not in description and len(description) < 100, name


def test_failures_and_only_failures_have_error_in_their_name():
    # The operations guide's `WHERE action LIKE '%error%'` and diagnose's severity agree.
    for name, severity, _ in vocabulary():
        assert ("error" in name) == (severity == Severity.ERROR), name


def test_a_fixed_action_is_its_own_name_and_carries_its_severity():
    assert Action.BOT_START == "bot.start" and Action("bot.start") is Action.BOT_START
    assert severity_of("bot.start") == Severity.INFO
    assert severity_of(Action.BOT_START_ERROR) == Severity.ERROR
    assert severity_of("bot.stop_denied") == Severity.WARNING


def test_every_maintenance_job_has_its_two_actions():
    for job in maintenance.JOBS:
        assert severity_of(f"maintenance.{job}") == Severity.INFO
        assert severity_of(f"maintenance.{job}_error") == Severity.ERROR


def test_admin_changes_are_named_after_an_installed_model_except_those_with_their_own_vocabulary():
    assert severity_of("auth.user.update") == Severity.INFO
    assert severity_of("django_celery_beat.periodictask.delete") == Severity.INFO
    assert severity_of("bot.update") == Severity.INFO
    for label in ADMIN_SUBJECTS:
        with pytest.raises(ValueError, match="undeclared audit action"):
            severity_of(f"{label}.update")


@pytest.mark.parametrize(
    "action",
    ["bot.started_ok", "bots.start", "maintenance.nonesuch", "maintenance.nonesuch_error", "auth.nomodel.update", ""],
)
def test_an_undeclared_action_is_refused(action):
    with pytest.raises(ValueError, match="undeclared audit action"):
        severity_of(action)


def test_a_family_finds_the_subject_of_an_action():
    errors = next(f for f in FAMILIES if f.pattern == "maintenance.{job}_error")
    assert errors.subject("maintenance.backup_error") == "backup"
    assert errors.subject("maintenance.backup") is None
    assert errors.shown == "maintenance.<job>_error"


def _written_actions() -> list[tuple[str, int, str]]:
    """(file, line, action) for every string constant passed as the action of a writer."""
    found = []
    for package in ("bots", "deia", "ops"):
        for path in sorted((ROOT / package).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                if not isinstance(node, ast.Call):
                    continue
                func = node.func.id if isinstance(node.func, ast.Name) else getattr(node.func, "attr", "")
                position = WRITERS.get(func, len(node.args))
                action = node.args[position] if position < len(node.args) else None
                if isinstance(action, ast.Constant) and isinstance(action.value, str):
                    found.append((str(path.relative_to(ROOT)), node.lineno, action.value))
    return found


def test_every_action_the_code_writes_by_name_is_declared():
    # audit() refuses the others at run time; this finds them in paths no test runs.
    written = _written_actions()
    assert "auth.user.create" in {action for _, _, action in written}  # setup's: the walk finds them
    undeclared = []
    for path, line, action in written:
        try:
            severity_of(action)
        except ValueError:
            undeclared.append(f"{path}:{line} {action}")
    assert undeclared == []


def test_the_docs_table_is_the_declaration():
    text = DOC.read_text()
    table = re.search(r"<!-- audit-vocabulary:.*?-->\n(.*?)<!-- /audit-vocabulary -->", text, re.S)
    assert table, "docs/OBSERVABILITY.md lost its audit-vocabulary table"
    expected = "| Action | Severity | Meaning |\n|--------|----------|---------|\n"
    expected += "".join(f"| `{name}` | {severity} | {description} |\n" for name, severity, description in vocabulary())
    assert table.group(1) == expected, "regenerate the table in docs/OBSERVABILITY.md:\n" + expected


@pytest.mark.parametrize(
    ("name", "secret"),
    [
        ("password", True),
        ("chat_secret", True),
        ("digest", True),
        ("key_hash", True),
        ("api_key", True),
        ("token", True),
        ("name", False),
        ("system_prompt", False),
        ("prompt_tokens", False),
        ("keep", False),
        ("monkey", False),
    ],
)
def test_secret_field_names_are_recognised(name, secret):
    assert is_secret_name(name) is secret
