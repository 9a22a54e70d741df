"""The web's traffic figures cost no database write per request: one upsert per flush."""

from __future__ import annotations

import httpx
import pytest
from django.conf import settings
from django.db import connection
from django.test.utils import CaptureQueriesContext

from bots.models import Backend, Bot
from deia import traffic
from ops.console import samples
from ops.console.models import Sample
from tests.support.procs import free_port, wait_for

pytestmark = pytest.mark.django_db


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch):
    """The process aggregator on a clock the test moves; what it gathered before is dropped."""
    clock = Clock(1_800_000_000.0)
    monkeypatch.setattr(traffic.AGGREGATOR, "clock", clock)
    traffic.AGGREGATOR.take()
    yield clock
    traffic.AGGREGATOR.take()


def writes(queries: CaptureQueriesContext) -> list[str]:
    return [q["sql"] for q in queries.captured_queries if "ops_sample" in q["sql"]]


def test_many_requests_write_nothing_until_the_flush_which_writes_once(client, clock):
    with CaptureQueriesContext(connection) as queries:
        for _ in range(40):
            assert client.get("/health").status_code == 200
            clock.now += 0.1  # 4 s in all: under TRAFFIC_FLUSH_SECONDS
        assert client.get("/api/bots").status_code in (401, 403)
    assert writes(queries) == []
    assert not Sample.objects.exists()

    clock.now += settings.TRAFFIC_FLUSH_SECONDS
    with CaptureQueriesContext(connection) as queries:
        client.get("/health")
    assert len(writes(queries)) == 1
    counts = {(n, lb): v for n, lb, v in Sample.objects.values_list("name", "label", "value")}
    assert counts[(samples.REQUESTS, "")] == 42
    # /health is left out of the latency histogram (as the recording rule does); the API call is in it.
    assert sum(v for (n, _), v in counts.items() if n == samples.LATENCY) == 1
    assert (samples.ERRORS, "") not in counts


@pytest.mark.django_db(transaction=True)  # the health check reads the bots from its own thread
def test_a_server_error_is_counted_as_an_error(client, clock, settings):
    # /health/llm answers 503 when a bot's LLM server does not answer (nothing listens there).
    settings.OLLAMA_URL = f"http://127.0.0.1:{free_port()}"
    Bot.objects.create(name="Down", slug="down", backend=Backend.OLLAMA, model_name="llama3.2")
    assert client.get("/health/llm").status_code == 503
    clock.now += settings.TRAFFIC_FLUSH_SECONDS
    client.get("/health")
    counts = {(n, lb): v for n, lb, v in Sample.objects.values_list("name", "label", "value")}
    assert counts[(samples.ERRORS, "")] == 1
    assert counts[(samples.REQUESTS, "")] == 2


def test_a_failing_sink_loses_those_seconds_and_never_the_request(client, clock, monkeypatch):
    def broken(_taken):
        raise RuntimeError("database away")

    monkeypatch.setattr(traffic.AGGREGATOR, "sinks", [broken])
    clock.now += settings.TRAFFIC_FLUSH_SECONDS
    assert client.get("/health").status_code == 200
    assert traffic.AGGREGATOR.take() == {}


@pytest.mark.django_db(transaction=True)
def test_a_real_web_process_flushes_its_minutes_on_its_own(gunicorn):
    web = gunicorn(workers=1, TRAFFIC_FLUSH_SECONDS="1")

    def flushed() -> bool:
        httpx.get(f"{web}/health", timeout=10)
        return Sample.objects.filter(name=samples.REQUESTS).exists()

    # The first flush comes TRAFFIC_FLUSH_SECONDS after the worker started, on the end of a request.
    wait_for(flushed, timeout=20, interval=0.5, what="the web's first flush")
    assert Sample.objects.filter(name=samples.REQUESTS).count() >= 1
