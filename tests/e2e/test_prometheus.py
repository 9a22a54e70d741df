"""A real Prometheus scrapes the web app and, through HTTP service discovery, the running bots."""

from __future__ import annotations

import json

import pytest

from bots.models import Backend, Bot
from tests.plugins.observability import (
    RUNNER_CONTRACT,
    WEB_CONTRACT,
    WebApi,
    deia_scrape_configs,
    prom_query,
    prom_targets,
    wait_for_series,
    wait_targets_up,
)
from tests.support.procs import wait_for

pytestmark = pytest.mark.django_db(transaction=True)


def test_prometheus_scrapes_the_web_app_with_the_token_from_outside_the_allowlist(gunicorn, prometheus):
    token = "prometheus-e2e-token-0123456789"
    web = gunicorn(workers=2, METRICS_ALLOWED_CIDRS="10.0.0.0/8", METRICS_TOKEN=token)
    url = prometheus(deia_scrape_configs(web, token=token))
    wait_targets_up(url, {"deia-web": 1, "deia-bots": 0})
    [up] = prom_query(url, 'up{job="deia-web"}')
    assert up["value"][1] == "1"
    # Every contract family of the web app is in Prometheus under its exact name.
    present = wait_for(
        lambda: (
            (names := {r["metric"]["__name__"] for r in prom_query(url, '{job="deia-web"}')}) >= set(WEB_CONTRACT)
            and names
        ),
        timeout=20,
        what="the contract families in Prometheus",
    )
    assert "deia_bots" in present


def test_without_the_token_prometheus_sees_the_web_app_refuse_it(gunicorn, prometheus):
    web = gunicorn(workers=1, METRICS_ALLOWED_CIDRS="10.0.0.0/8", METRICS_TOKEN="the-real-token-0123456789")
    url = prometheus(deia_scrape_configs(web))

    def refused():
        targets = [t for t in prom_targets(url) if t["labels"]["job"] == "deia-web"]
        return targets and targets[0]["health"] == "down" and "403" in targets[0]["lastError"]

    wait_for(refused, timeout=30, what="the deia-web target down with a 403")


def count(url: str, bot: str) -> float:
    result = prom_query(url, f'deia_bot_message_processing_seconds_count{{bot="{bot}"}}')
    return float(result[0]["value"][1]) if result else -1.0


def test_prometheus_finds_two_running_bots_and_sees_a_chat_in_the_bot_histogram(
    gunicorn, bot_worker, prometheus, fake_ollama, tmp_path
):
    web = gunicorn(workers=2, LOG_LEVEL="INFO")
    worker = bot_worker("host-a")
    api = WebApi(web)
    echo = Bot.objects.create(name="Alpha", slug="alpha", backend=Backend.ECHO, model_name="echo")
    llama = Bot.objects.create(name="Bravo", slug="bravo", backend=Backend.OLLAMA, model_name="llama3.2")
    api.start_bots([echo, llama])

    url = prometheus(deia_scrape_configs(web))
    targets = wait_targets_up(url, {"deia-web": 1, "deia-bots": 2})
    discovered = {t["labels"]["bot"]: t for t in targets if t["labels"]["job"] == "deia-bots"}
    assert set(discovered) == {"alpha", "bravo"}
    assert discovered["bravo"]["labels"]["bot_id"] == str(llama.pk)
    assert discovered["bravo"]["labels"]["instance"] == llama.address
    # The host label names the worker that runs each bot (Alertmanager inhibits on it).
    assert {t["labels"]["host"] for t in discovered.values()} == {"host-a"}
    up = {(r["metric"]["job"], r["metric"].get("bot", "")): r["value"][1] for r in prom_query(url, "up")}
    assert up == {("deia-web", ""): "1", ("deia-bots", "alpha"): "1", ("deia-bots", "bravo"): "1"}
    # Each bot's own series, under the exact contract names and with its own bot label.
    series = wait_for_series(url, '{job="deia-bots", bot="bravo"}')
    names = {r["metric"]["__name__"] for r in series}
    assert set(RUNNER_CONTRACT) <= names, set(RUNNER_CONTRACT) - names
    assert {r["metric"].get("host") for r in series} == {"host-a"}, "a series scraped from a bot without its host"

    wait_for_series(url, 'deia_bot_message_processing_seconds_count{bot="bravo"}')
    before = count(url, "bravo")
    secret = "my parcel number is 0042-secret"
    answer = api.chat(llama, secret, **{"X-Request-ID": "e2e-chat-0001"})
    assert answer.headers["X-Request-ID"] == "e2e-chat-0001"
    wait_for(lambda: count(url, "bravo") > before, timeout=30, what="the chat in bravo's histogram")

    # One id followed the chat from the web API through the runner to the LLM.
    [chat] = fake_ollama.chats()
    assert chat.headers["x-request-id"] == "e2e-chat-0001"
    web_lines = [line for line in gunicorn.proc.output().splitlines() if "e2e-chat-0001" in line]
    assert web_lines and all(line.startswith("{") for line in web_lines)
    # Lifecycle events are JSON lines in the worker's output too.
    events = [json.loads(line) for line in worker.proc.output().splitlines() if line.startswith("{")]
    started = [e for e in events if e["logger"] == "deia.lifecycle" and e["message"] == "bot.started"]
    assert sorted(e["bot"] for e in started) == ["alpha", "bravo"]
    # No message content in any process's log at INFO: web, worker, runners.
    runner_logs = [p.read_text(errors="replace") for p in (tmp_path / "log").rglob("*") if p.is_file()]
    for output in (gunicorn.proc.output(), worker.proc.output(), *runner_logs):
        assert secret not in output


def test_scraped_prometheus_has_every_app_family_the_dashboards_need(scraped_prometheus):
    names = {r["metric"]["__name__"] for r in prom_query(scraped_prometheus, '{__name__=~"deia_.+|django_.+"}')}
    assert set(WEB_CONTRACT) - {"process_resident_memory_bytes"} <= names
    assert set(RUNNER_CONTRACT) - {"process_resident_memory_bytes"} <= names
    assert prom_query(scraped_prometheus, "rate(django_http_requests_total_by_method_total[1m]) > 0")
