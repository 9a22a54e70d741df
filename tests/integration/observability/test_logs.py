"""Structured logs: one JSON line per request, request ids kept or made, text for people, no secrets."""

from __future__ import annotations

import json
import logging
import re

import httpx
import pytest

from deia.logs import JsonFormatter, RequestIdFilter, TextFormatter, set_request_id
from tests.support.procs import wait_for

REQUEST_FIELDS = {"time", "level", "logger", "message", "method", "path", "status", "duration_ms", "request_id", "user"}


def json_lines(output: str) -> list[dict]:
    lines = []
    for line in output.splitlines():
        if line.startswith("{"):
            lines.append(json.loads(line))
    return lines


def request_lines(proc, path: str) -> list[dict]:
    return [line for line in json_lines(proc.output()) if line.get("logger") == "deia.request" and line["path"] == path]


@pytest.fixture
def web(gunicorn):
    def start(**env: str):
        url = gunicorn(workers=1, LOG_LEVEL="INFO", **env)
        return url, gunicorn.proc

    return start


@pytest.mark.django_db(transaction=True)
def test_a_request_logs_one_json_line_with_every_field(web):
    url, proc = web()
    response = httpx.get(f"{url}/health/db", headers={"X-Request-ID": "chat-42.a:b"})
    assert response.headers["X-Request-ID"] == "chat-42.a:b"
    lines = wait_for(lambda: request_lines(proc, "/health/db"), what="the request's log line")
    assert len(lines) == 1
    line = lines[0]
    assert set(line) >= REQUEST_FIELDS, line
    assert line["level"] == "INFO"
    assert line["method"] == "GET"
    assert line["status"] == 200
    assert line["request_id"] == "chat-42.a:b"
    assert line["user"] is None
    assert line["duration_ms"] >= 0
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", line["time"])


@pytest.mark.django_db(transaction=True)
def test_a_request_id_is_made_when_none_or_a_malformed_one_comes_in(web):
    url, proc = web()
    made = httpx.get(f"{url}/health").headers["X-Request-ID"]
    assert re.fullmatch(r"[0-9a-f]{32}", made)
    forged = httpx.get(f"{url}/health", headers={"X-Request-ID": 'x" "level": "CRITICAL'}).headers["X-Request-ID"]
    assert re.fullmatch(r"[0-9a-f]{32}", forged)
    too_long = httpx.get(f"{url}/health", headers={"X-Request-ID": "a" * 129}).headers["X-Request-ID"]
    assert re.fullmatch(r"[0-9a-f]{32}", too_long)
    logged = wait_for(lambda: len(request_lines(proc, "/health")) >= 3 and request_lines(proc, "/health"))
    assert {made, forged, too_long} <= {line["request_id"] for line in logged}


@pytest.mark.django_db(transaction=True)
def test_log_format_text_gives_lines_for_people(web):
    url, proc = web(LOG_FORMAT="text")
    request_id = httpx.get(f"{url}/health/cache").headers["X-Request-ID"]
    line = wait_for(
        lambda: next((li for li in proc.output().splitlines() if f"[{request_id}]" in li), None), what="a text line"
    )
    assert line.startswith("20")  # the time first, not a JSON object
    assert "INFO    deia.request" in line
    assert "GET /health/cache 200" in line
    assert "status=200" in line


@pytest.mark.django_db(transaction=True)
def test_no_token_or_query_string_reaches_the_logs(web):
    url, proc = web(METRICS_TOKEN="very-secret-scrape-token")
    response = httpx.get(
        f"{url}/metrics?token=query-secret",
        headers={"Authorization": "Bearer very-secret-scrape-token", "Cookie": "sessionid=cookie-secret"},
    )
    assert response.status_code == 200
    wait_for(lambda: request_lines(proc, "/metrics"), what="the /metrics log line")
    output = proc.output()
    for secret in ("very-secret-scrape-token", "query-secret", "cookie-secret"):
        assert secret not in output


@pytest.mark.django_db
def test_the_request_line_names_the_signed_in_user(admin_client, caplog):
    with caplog.at_level(logging.INFO, logger="deia.request"):
        response = admin_client.get("/admin/")
    assert response.status_code == 200
    [record] = [r for r in caplog.records if r.name == "deia.request"]
    assert record.user == "admin"
    assert record.request_id == response["X-Request-ID"]


@pytest.mark.django_db
def test_a_server_error_is_logged_at_error_level(client, caplog, monkeypatch):
    def boom(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr("ops.views.render_web_metrics", boom)
    client.raise_request_exception = False
    with caplog.at_level(logging.INFO, logger="deia.request"):
        assert client.get("/metrics").status_code == 500
    [record] = [r for r in caplog.records if r.name == "deia.request"]
    assert record.levelno == logging.ERROR
    assert record.status == 500


def format_with(formatter: logging.Formatter, **extra) -> str:
    record = logging.makeLogRecord(
        {"name": "deia.lifecycle", "levelno": logging.INFO, "levelname": "INFO", "msg": "bot started", **extra}
    )
    RequestIdFilter().filter(record)
    return formatter.format(record)


def test_a_lifecycle_event_line_carries_its_extra_fields_and_the_request_id():
    token = set_request_id("req-7")
    try:
        line = json.loads(format_with(JsonFormatter(), event="bot.start", bot="alpha", port=8001))
    finally:
        from deia.logs import reset_request_id

        reset_request_id(token)
    assert line["logger"] == "deia.lifecycle"
    assert line["message"] == "bot started"
    assert (line["event"], line["bot"], line["port"]) == ("bot.start", "alpha", 8001)
    assert line["request_id"] == "req-7"
    text = format_with(TextFormatter(), event="bot.start", bot="alpha")
    assert "bot started event=bot.start bot=alpha" in text
    assert "[-]" in text  # outside a request


@pytest.mark.django_db(transaction=True)
def test_gunicorns_own_access_log_is_json_even_with_quotes_in_the_request(gunicorn):
    url = gunicorn(workers=1, GUNICORN_ACCESSLOG="-")
    agent = 'curl/8 "quoted" \\ agent'
    response = httpx.get(f"{url}/health", headers={"User-Agent": agent, "X-Request-ID": "access-1"})
    assert response.status_code == 200

    def access_line():
        for line in gunicorn.proc.output().splitlines():
            if '"gunicorn.access"' in line and '"access-1"' in line:
                return json.loads(line)
        return None

    line = wait_for(access_line, timeout=10, what="gunicorn's access line")
    assert line["user_agent"] == agent
    assert (line["method"], line["path"], line["status"], line["request_id"]) == ("GET", "/health", 200, "access-1")
    assert isinstance(line["duration_ms"], float) and isinstance(line["bytes"], int)
