"""Shared fixtures and helpers of the observability suites (registered in tests/conftest.py)."""

from __future__ import annotations

import httpx
from prometheus_client.parser import text_string_to_metric_families

# The metric contract (ARCHITECTURE.md): sample names a scrape must contain, exactly.
WEB_CONTRACT = (
    "deia_bots",
    "deia_bots_max",
    "deia_bot_starts_total",
    "deia_bot_start_errors_total",
    "deia_bot_startup_seconds_bucket",
    "deia_bot_startup_seconds_count",
    "deia_bot_startup_seconds_sum",
    "deia_bot_crashes_total",
    "deia_bot_restarts_total",
    "deia_db_pool_connections",
    "deia_db_pool_max",
    "deia_backup_last_success_timestamp_seconds",
    "deia_backup_size_bytes",
    "deia_maintenance_runs_total",
    "deia_maintenance_last_success_timestamp_seconds",
    "deia_health_check_up",
    # django-prometheus: requests, responses, latency, database, cache; and the process.
    "django_http_requests_total_by_method_total",
    "django_http_responses_total_by_status_total",
    "django_http_requests_latency_seconds_by_view_method_bucket",
    "django_db_execute_total",
    "django_db_query_duration_seconds_bucket",
    "django_cache_get_total",
    "process_resident_memory_bytes",
)
RUNNER_CONTRACT = (
    "deia_bot_messages_total",
    "deia_bot_message_errors_total",
    "deia_bot_message_processing_seconds_bucket",
    "deia_bot_message_processing_seconds_count",
    "deia_llm_request_seconds_bucket",
    "deia_llm_request_seconds_count",
    "deia_llm_tokens_total",
    "process_resident_memory_bytes",
)


def parse_samples(text: str) -> dict[tuple[str, frozenset], float]:
    """Exposition text -> {(sample name, frozenset of label pairs): value}."""
    samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def sample_names(text: str) -> set[str]:
    return {name for name, _ in parse_samples(text)}


def value(samples: dict[tuple[str, frozenset], float], name: str, **labels: str) -> float:
    """Sum of the samples called `name` whose labels include `labels` (0 if there are none)."""
    wanted = set(labels.items())
    return sum(v for (n, pairs), v in samples.items() if n == name and wanted <= pairs)


def scrape(url: str, **kwargs) -> dict[tuple[str, frozenset], float]:
    response = httpx.get(f"{url}/metrics", timeout=10, **kwargs)
    assert response.status_code == 200, response.text
    return parse_samples(response.text)
