"""DATABASE_POOLER=pgbouncer: the settings transaction pooling needs, what goes past PgBouncer,
and the system check that refuses what it cannot serve (deia.pooler, docs/PGBOUNCER.md)."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

from deia.config import Env
from deia.pooler import direct_command, pooler_problems
from tests.support.procs import PYTHON, ROOT

POOLED = "postgres://deia:pw@127.0.0.1:6432/deia"
DIRECT = "postgres://deia:pw@127.0.0.1:5432/deia"


def database(url: str, pooler: str = "pgbouncer") -> dict:
    return Env({"DATABASE_URL": url}).database("DATABASE_URL", "", {}, pooler=pooler)


def test_behind_pgbouncer_nothing_is_prepared_and_no_cursor_outlives_its_transaction():
    pooled = database(POOLED)
    assert pooled["OPTIONS"]["prepare_threshold"] is None
    assert pooled["DISABLE_SERVER_SIDE_CURSORS"] is True
    plain = database(DIRECT, pooler="none")
    assert "DISABLE_SERVER_SIDE_CURSORS" not in plain


@pytest.mark.parametrize(
    ("argv", "direct"),
    [
        (["manage.py", "migrate"], True),
        (["/opt/deia/manage.py", "setup", "--no-demo"], True),
        (["manage.py", "backup"], True),
        (["manage.py", "dbshell"], True),
        (["manage.py", "runbot", "3"], False),
        (["manage.py"], False),
        (["celery", "migrate"], False),
    ],
)
def test_schema_changes_and_dumps_go_past_pgbouncer(argv, direct):
    assert direct_command(argv) is direct


def pooled_settings(settings, url: str = POOLED, direct: str | None = DIRECT, **options) -> None:
    settings.DATABASE_POOLER = "pgbouncer"
    served = database(url)
    served["OPTIONS"].update(options)
    settings.DATABASE_SERVED = served
    settings.DATABASE_DIRECT = database(direct, pooler="none") if direct else None


def test_a_pooled_setup_as_documented_passes(settings):
    pooled_settings(settings)
    assert pooler_problems() == []


@pytest.mark.parametrize(
    ("change", "said"),
    [
        ({"url": "sqlite:////tmp/x.sqlite3"}, "needs DATABASE_URL to be postgres://"),
        ({"prepare_threshold": 5}, "prepare_threshold=5: PgBouncer 1.18 in transaction mode"),
        ({"assume_role": "owner"}, "SET ROLE is session state"),
        ({"direct": None}, "needs DATABASE_DIRECT_URL"),
        ({"direct": "sqlite:////tmp/x.sqlite3"}, "DATABASE_DIRECT_URL must be postgres://"),
    ],
)
def test_each_bad_combination_is_one_clear_problem(settings, change, said):
    if "url" in change:
        settings.DATABASE_POOLER = "pgbouncer"
        settings.DATABASE_SERVED = Env({"D": change["url"]}).database("D", "", {})
        settings.DATABASE_DIRECT = None
    elif "direct" in change and change["direct"] and change["direct"].startswith("sqlite"):
        pooled_settings(settings)
        settings.DATABASE_DIRECT = Env({"D": change["direct"]}).database("D", "", {})
    else:
        pooled_settings(settings, **change)
    problems = pooler_problems()
    assert len(problems) == 1, problems
    assert said in problems[0]


def test_without_a_pooler_nothing_is_checked(settings):
    settings.DATABASE_POOLER = "none"
    settings.DATABASE_SERVED = database(POOLED)
    settings.DATABASE_SERVED["OPTIONS"]["prepare_threshold"] = 5
    assert pooler_problems() == []


def manage_check(**env_changes: str) -> subprocess.CompletedProcess:
    env = {**os.environ, **env_changes}
    return subprocess.run([PYTHON, "manage.py", "check"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)


def test_manage_py_check_refuses_prepared_statements_behind_pgbouncer():
    # `check` reads the settings only: nothing listens on these ports.
    result = manage_check(
        DATABASE_POOLER="pgbouncer", DATABASE_URL=f"{POOLED}?prepare_threshold=5", DATABASE_DIRECT_URL=DIRECT
    )
    assert result.returncode != 0
    errors = re.findall(r"\(deia\.E020\) (.*)", result.stderr)
    assert errors == [
        "DATABASE_POOLER=pgbouncer with prepare_threshold=5: PgBouncer 1.18 in transaction mode cannot serve "
        "prepared statements; remove prepare_threshold from DATABASE_URL."
    ], result.stderr
    good = manage_check(DATABASE_POOLER="pgbouncer", DATABASE_URL=POOLED, DATABASE_DIRECT_URL=DIRECT)
    assert good.returncode == 0, good.stderr


def test_no_session_state_in_the_code():
    """Transaction pooling hands a server connection to another client after each transaction:
    session-level SET, advisory locks, LISTEN, temporary tables and WITH HOLD cursors would
    stay with it (Django's SET TIME ZONE is the same UTC on every client; PgBouncer tracks it)."""
    # In SQL strings: session-level locks, LISTEN, temporary tables, WITH HOLD, and a
    # statement that starts with SET (SET LOCAL and SET CONSTRAINTS end with the transaction).
    forbidden = re.compile(
        r"""["'].*(pg_advisory_lock|pg_try_advisory_lock\b|LISTEN\s+\w|CREATE\s+TEMP|WITH\s+HOLD|SET\s+SESSION)"""
        r"""|["']\s*SET\s+(?!LOCAL\b|CONSTRAINTS\b|TRANSACTION\b)\w+\s*(=|TO\b)"""
    )
    found = []
    for folder in ("deia", "bots", "ops"):
        for path in sorted((Path(ROOT) / folder).rglob("*.py")):
            if path.name == "pooler.py":  # the rules themselves
                continue
            for number, line in enumerate(path.read_text().splitlines(), 1):
                if forbidden.search(line) and "noqa: session-state" not in line:
                    found.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert found == [], "\n".join(found)
