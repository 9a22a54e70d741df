"""Credentials never leave a process: redact() and the places that print or store errors."""

from __future__ import annotations

import json
import logging
import os
import subprocess

import pytest

from deia.logs import JsonFormatter, TextFormatter
from deia.redact import redact
from tests.support.procs import PYTHON, ROOT

PASSWORD = "s3cret-Pa55"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (f"postgres://deia:{PASSWORD}@db:5432/deia", "postgres://deia:***@db:5432/deia"),
        (f"redis://:{PASSWORD}@127.0.0.1:6379/0", "redis://:***@127.0.0.1:6379/0"),
        (f"for url 'http://user:{PASSWORD}@llm:11434/api/tags'", "for url 'http://user:***@llm:11434/api/tags'"),
        (f"dbname=deia user=deia password={PASSWORD} host=db", "dbname=deia user=deia password=*** host=db"),
        (f"password='{PASSWORD} x'", "password=***"),
    ],
)
def test_it_masks_the_password_of_a_url_or_a_conninfo(text, expected):
    assert redact(text) == expected


@pytest.mark.parametrize(
    "text",
    ["redis://127.0.0.1:6379/0", "http://localhost:11434", "postgres://deia@/deia?host=/run/postgresql", "a=b", ""],
)
def test_it_leaves_text_without_a_password_alone(text):
    assert redact(text) == text


def record(msg: str, **extra) -> logging.LogRecord:
    return logging.makeLogRecord(
        {"name": "deia.test", "levelno": logging.ERROR, "levelname": "ERROR", "msg": msg, "request_id": "-", **extra}
    )


@pytest.mark.parametrize("formatter", [JsonFormatter(), TextFormatter()], ids=["json", "text"])
def test_log_lines_carry_no_url_password(formatter):
    line = formatter.format(record(f"cannot reach redis://:{PASSWORD}@cache:6379/0", url=f"amqp://u:{PASSWORD}@mq//"))
    assert PASSWORD not in line
    assert "redis://:***@cache:6379/0" in line


def test_a_newline_in_a_text_log_field_cannot_start_a_forged_line():
    username = "eve\n2026-01-01T00:00:00.000Z INFO    deia.audit [-] audit actor=admin\r\x1b[2J"
    line = TextFormatter().format(record(f"login failed for {username}", user=username))
    assert "\n" not in line and "\r" not in line and "\x1b" not in line
    assert "eve\\n2026-01-01" in line and "\\r\\x1b[2J" in line


def test_a_traceback_in_a_text_log_keeps_its_own_lines():
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        import sys

        rec = record("job crashed", exc_info=sys.exc_info())
    line = TextFormatter().format(rec)
    assert line.splitlines()[0].endswith("job crashed")
    assert "Traceback" in line.splitlines()[1]


def test_json_log_lines_escape_control_characters_too():
    line = JsonFormatter().format(record("x", user="eve\nforged"))
    assert "\n" not in line and json.loads(line)["user"] == "eve\nforged"


def test_a_configuration_error_does_not_print_the_password(tmp_path):
    env = {**os.environ, "DATABASE_URL": f"mysql://deia:{PASSWORD}@db/deia", "DJANGO_SETTINGS_MODULE": "deia.settings"}
    result = subprocess.run(
        [PYTHON, "manage.py", "check"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("configuration error: DATABASE_URL: ") and "got 'mysql://deia:***@db/deia'" in line
    assert PASSWORD not in result.stdout + result.stderr


def test_a_diagnose_finding_does_not_show_the_password():
    from ops.diagnose import Check, Level

    check = Check("redis", Level.CRIT, f"unreachable: redis://:{PASSWORD}@cache:6379/0 refused")
    assert PASSWORD not in check.line() and PASSWORD not in json.dumps(check.as_dict())
