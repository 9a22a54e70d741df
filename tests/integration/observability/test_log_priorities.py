"""Log lines carry the syslog priority journald files them under, and logs stay off stdout.

Under systemd (LOG_SYSLOG_PREFIX=true in the units) a line starts with <3> (error and
critical), <4> (warning), <6> (info) or <7> (debug); journald strips the prefix
(SyslogLevelPrefix=, on by default) and `journalctl -p err` finds the line. Elsewhere lines
are pure JSON. Logs go to stderr, so a command's stdout is its one-line summary alone.
"""

from __future__ import annotations

import json
import logging
import subprocess

import httpx
import pytest
from django.conf import settings

from deia.logs import JsonFormatter, TextFormatter
from deia.models import AuditLog
from tests.support.procs import PYTHON, ROOT, wait_for

LEVELS = [
    (logging.CRITICAL, "<3>"),
    (logging.ERROR, "<3>"),
    (logging.WARNING, "<4>"),
    (logging.INFO, "<6>"),
    (logging.DEBUG, "<7>"),
]


def record(level: int) -> logging.LogRecord:
    return logging.LogRecord("deia.test", level, __file__, 1, "something happened", None, None)


def configured_formatter(name: str, **options) -> logging.Formatter:
    """The formatter LOGGING builds, with `options` in place of the settings' own."""
    spec = {**settings.LOGGING["formatters"][name], **options}
    factory = {"deia.logs.JsonFormatter": JsonFormatter, "deia.logs.TextFormatter": TextFormatter}[spec.pop("()")]
    return factory(**spec)


@pytest.mark.parametrize(("level", "prefix"), LEVELS)
def test_each_level_gets_the_syslog_priority_journald_reads_and_the_rest_stays_json(level, prefix):
    line = configured_formatter("json", syslog_prefix=True).format(record(level))
    assert line.startswith(prefix)
    body = json.loads(line[len(prefix) :])
    assert body["level"] == logging.getLevelName(level) and body["message"] == "something happened"
    assert configured_formatter("text", syslog_prefix=True).format(record(level)).startswith(prefix)


def test_without_the_setting_lines_are_pure_json():
    assert settings.LOGGING["formatters"]["json"]["syslog_prefix"] is False
    line = configured_formatter("json").format(record(logging.ERROR))
    assert json.loads(line)["level"] == "ERROR"


def run_manage(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([PYTHON, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)


def test_a_process_started_as_the_units_start_it_prefixes_its_lines(child_env):
    code = "import logging; log = logging.getLogger('deia.test'); log.error('broken'); log.warning('odd')"
    result = run_manage(["shell", "-v", "0", "-c", code], {**child_env, "LOG_SYSLOG_PREFIX": "true"})
    assert result.returncode == 0, result.stderr
    lines = [line for line in result.stderr.splitlines() if '"deia.test"' in line]
    assert [line[:3] for line in lines] == ["<3>", "<4>"], result.stderr
    assert [json.loads(line[3:])["message"] for line in lines] == ["broken", "odd"]


@pytest.mark.django_db(transaction=True)
def test_a_state_changing_command_prints_only_its_summary_on_stdout(child_env):
    result = run_manage(["freeze_starts"], {**child_env, "LOG_LEVEL": "INFO"})
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["bot starts frozen"]
    assert AuditLog.objects.count() == 1  # it did change state
    # The audit line is still logged, on stderr.
    assert any('"deia.audit"' in line for line in result.stderr.splitlines()), result.stderr


@pytest.mark.django_db(transaction=True)
def test_gunicorn_s_own_lines_and_the_app_s_carry_the_prefix_under_the_units_setting(gunicorn):
    url = gunicorn(workers=1, LOG_SYSLOG_PREFIX="true", LOG_LEVEL="INFO")
    assert httpx.get(f"{url}/health").status_code == 200

    def lines() -> list[str]:
        found = gunicorn.proc.output().splitlines()
        return found if any('"deia.request"' in line for line in found) else []

    output = wait_for(lines, timeout=10, what="the request's log line")
    assert any(line.startswith("<6>[") and "Booting worker" in line for line in output), output
    request = next(line for line in output if '"deia.request"' in line)
    assert request.startswith("<6>{") and json.loads(request[3:])["path"] == "/health"
