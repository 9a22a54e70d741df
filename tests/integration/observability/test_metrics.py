"""The web app's /metrics: contract names, created at zero, stored and fleet metrics, query count."""

from __future__ import annotations

import pytest
from django.db import connections
from django.db.models.functions import Now

from bots import metrics
from bots.models import Backend, Bot, Host, Status
from deia.models import RuntimeFlag
from ops import health
from ops.metrics import BACKUP_SIZE
from tests.plugins.observability import WEB_CONTRACT, parse_samples, sample_names, value
from tests.support.procs import free_port

pytestmark = pytest.mark.django_db


def scrape(client) -> str:
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain")
    return response.content.decode()


def make_bots(n: int, status: str = Status.STOPPED, first_port: int = 40000) -> list[Bot]:
    return Bot.objects.bulk_create(
        Bot(
            name=f"bot {i}",
            slug=f"bot-{i}",
            backend=Backend.ECHO,
            status=status,
            port=first_port + i if status == Status.RUNNING else None,
            host="127.0.0.1",
        )
        for i in range(n)
    )


def test_a_scrape_has_every_web_metric_of_the_contract_by_its_exact_name(client):
    client.get("/health")  # a request, so that the by-status and by-view families have samples
    client.get("/health/cache")
    names = sample_names(scrape(client))
    missing = [name for name in WEB_CONTRACT if name not in names]
    assert not missing, missing
    # A CounterMetricFamily named x_total must not render as x_total_total.
    assert not [name for name in names if name.endswith("_total_total")]


def test_the_web_does_not_export_the_runner_metrics(client):
    names = sample_names(scrape(client))
    assert not [n for n in names if n.startswith(("deia_bot_message", "deia_llm_", "deia_bot_messages"))]


def test_lifecycle_and_maintenance_counters_are_exported_at_zero_before_the_first_event(client):
    samples = parse_samples(scrape(client))
    assert samples[("deia_bot_starts_total", frozenset({("result", "ok")}))] == 0
    assert samples[("deia_bot_starts_total", frozenset({("result", "error")}))] == 0
    assert samples[("deia_bot_start_errors_total", frozenset())] == 0
    assert samples[("deia_bot_crashes_total", frozenset())] == 0
    assert samples[("deia_bot_restarts_total", frozenset())] == 0
    assert samples[("deia_bot_startup_seconds_count", frozenset())] == 0
    assert samples[("deia_maintenance_runs_total", frozenset({("task", "backup"), ("result", "ok")}))] == 0


def test_stored_counters_and_histograms_add_up_in_a_scrape(client):
    metrics.STARTS.inc(result="ok")
    metrics.STARTS.inc(result="ok")
    metrics.CRASHES.inc()
    metrics.STARTUP_SECONDS.observe(0.3)
    metrics.STARTUP_SECONDS.observe(4.0)
    BACKUP_SIZE.set(12345)
    samples = parse_samples(scrape(client))
    assert value(samples, "deia_bot_starts_total", result="ok") == 2
    assert value(samples, "deia_bot_starts_total", result="error") == 0
    assert value(samples, "deia_bot_crashes_total") == 1
    assert value(samples, "deia_bot_startup_seconds_count") == 2
    assert value(samples, "deia_bot_startup_seconds_sum") == pytest.approx(4.3)
    assert value(samples, "deia_bot_startup_seconds_bucket", le="0.5") == 1
    assert value(samples, "deia_bot_startup_seconds_bucket", le="5") == 2
    assert value(samples, "deia_bot_startup_seconds_bucket", le="+Inf") == 2
    assert value(samples, "deia_backup_size_bytes") == 12345


def test_a_stored_metric_refuses_labels_it_does_not_declare():
    with pytest.raises(ValueError, match="takes labels"):
        metrics.STARTS.inc(bot="one")


def test_fleet_gauges_count_bots_by_status_and_show_max_bots(client, settings):
    settings.MAX_BOTS = 7
    make_bots(3, Status.RUNNING)
    Bot.objects.create(name="broken", slug="broken", status=Status.ERROR)
    samples = parse_samples(scrape(client))
    assert value(samples, "deia_bots", status="running") == 3
    assert value(samples, "deia_bots", status="error") == 1
    assert value(samples, "deia_bots", status="crashed") == 0
    assert value(samples, "deia_bots_max") == 7


def test_max_bots_is_zero_while_starts_are_frozen(client):
    RuntimeFlag.objects.create(name=RuntimeFlag.FREEZE_STARTS, enabled=True)
    assert value(parse_samples(scrape(client)), "deia_bots_max") == 0


def test_a_scrape_runs_the_same_few_queries_with_100_bots(client, django_assert_max_num_queries):
    make_bots(100, Status.RUNNING)
    # With hosts the scrape also counts bots per host: the worst case, and the same one
    # whether or not a Celery worker of this database has written its Host row by now.
    for name in ("127.0.0.1", "host-b"):
        Host.objects.create(name=name, last_seen=Now())
    scrape(client)  # the first scrape of a process also waits for its first health results
    # bots by status, the freeze flag, the stored metrics, the first backup's schedule,
    # the hosts, the bots per host
    with django_assert_max_num_queries(6):
        text = scrape(client)
    samples = parse_samples(text)
    assert value(samples, "deia_bots", status="running") == 100
    assert value(samples, "deia_host_bots", host="127.0.0.1") == 100
    assert value(samples, "deia_host_bots", host="host-b") == 0


def test_pool_gauges_come_from_the_psycopg_pool_statistics(client):
    pool = connections["default"].pool
    assert pool is not None, "the test settings use Django's psycopg pool"
    samples = parse_samples(scrape(client))
    stats = pool.get_stats()
    assert value(samples, "deia_db_pool_max") == stats["pool_max"]
    in_use = value(samples, "deia_db_pool_connections", state="in_use")
    idle = value(samples, "deia_db_pool_connections", state="idle")
    # This test's own connection is checked out while the scrape runs.
    assert in_use >= 1
    assert in_use + idle <= stats["pool_max"]


@pytest.mark.django_db(transaction=True)  # the checks run in threads with their own connections
def test_health_gauges_show_the_last_result_of_each_check(client, settings):
    settings.OLLAMA_URL = f"http://127.0.0.1:{free_port()}"
    Bot.objects.create(name="llama", slug="llama", backend=Backend.OLLAMA)
    assert client.get("/health/llm").status_code == 503
    assert client.get("/health/cache").status_code == 200
    samples = parse_samples(scrape(client))
    assert value(samples, "deia_health_check_up", check="llm") == 0
    assert value(samples, "deia_health_check_up", check="cache") == 1
    assert value(samples, "deia_health_check_seconds", check="cache") > 0


def test_a_scrape_refreshes_stale_health_results_in_the_background(client, settings):
    settings.HEALTH_METRICS_MAX_AGE = 1.0
    health._checked_at.clear()
    samples = parse_samples(scrape(client))
    # Healthy dependencies answer within the first scrape's short wait.
    for check in ("db", "cache", "broker", "llm"):
        assert value(samples, "deia_health_check_up", check=check) == 1, check
