"""Shared fixtures and helpers of the observability suites (registered in tests/conftest.py)."""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path
from typing import NamedTuple

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.plugins.lifecycle import Worker
from tests.support.procs import free_port, http_ok, wait_for

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
    "deia_bot_reschedules_total",
    "deia_hosts",
    "deia_db_pool_connections",
    "deia_db_pool_max",
    "deia_backup_last_success_timestamp_seconds",
    "deia_backup_size_bytes",
    "deia_maintenance_runs_total",
    "deia_maintenance_last_success_timestamp_seconds",
    "deia_task_rejected_total",
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
    "deia_bot_first_token_seconds_bucket",
    "deia_bot_first_token_seconds_count",
    "deia_chats_in_flight",
    "deia_chat_rejected_total",
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


# --- a real Prometheus (Debian's package), started by the test on a loopback port ---------
def deia_scrape_configs(web_url: str, token: str | None = None) -> list[dict]:
    """The shipped jobs (deploy/prometheus/prometheus.yml) pointed at a test gunicorn, every second."""
    host = web_url.removeprefix("http://")
    auth = {"authorization": {"type": "Bearer", "credentials": token}} if token else {}
    return [
        {"job_name": "deia-web", "metrics_path": "/metrics", "static_configs": [{"targets": [host]}], **auth},
        {
            "job_name": "deia-bots",
            "metrics_path": "/metrics",
            "honor_labels": True,
            "http_sd_configs": [{"url": f"{web_url}/api/prometheus/targets", "refresh_interval": "1s", **auth}],
        },
    ]


# A rule group's own evaluation interval (`  interval: 30s` under `- name:`).
GROUP_INTERVAL = re.compile(r"^(\s+interval:\s*)\S+\s*$", re.M)


@pytest.fixture
def prometheus(spawn, tmp_path: Path):
    """prometheus(scrape_configs, rule_files=()) -> URL of a real Prometheus scraping every second.

    rule_files: rule files it loads and evaluates every second. A copy of each is loaded with
    its groups' own `interval` (the shipped recording groups' 30 s) set to one second too: the
    same rules, without each test waiting half a minute for their first evaluation.
    It is stopped at teardown.
    """
    binary = shutil.which("prometheus") or "/usr/bin/prometheus"
    if not Path(binary).exists():
        pytest.fail("prometheus is not installed (apt-get install prometheus); this test never skips", pytrace=False)
    started: list[int] = []

    def start(scrape_configs: list[dict], rule_files: tuple[Path, ...] = ()) -> str:
        workdir = tmp_path / f"prometheus-{len(started)}"
        workdir.mkdir()
        copies = []
        for i, source in enumerate(rule_files):
            copy = workdir / f"rules-{i}-{Path(source).name}"
            copy.write_text(GROUP_INTERVAL.sub(r"\g<1>1s", Path(source).read_text()))
            copies.append(str(copy))
        config = {
            "global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
            "scrape_configs": scrape_configs,
            "rule_files": copies,
        }
        # YAML is a superset of JSON: no YAML writer needed.
        (workdir / "prometheus.yml").write_text(json.dumps(config, indent=2))
        port = free_port()
        proc = spawn(
            [
                binary,
                f"--config.file={workdir / 'prometheus.yml'}",
                f"--storage.tsdb.path={workdir / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--log.level=warn",
            ],
            dict(os.environ),
            "prometheus",
        )
        url = f"http://127.0.0.1:{port}"
        wait_for(lambda: http_ok(f"{url}/-/ready") or not proc.running(), timeout=30, what="Prometheus /-/ready")
        assert proc.running(), proc.output()
        started.append(port)
        return url

    return start


def prom_query(url: str, expr: str) -> list[dict]:
    """An instant query's result vector."""
    body = httpx.get(f"{url}/api/v1/query", params={"query": expr}, timeout=10).json()
    assert body["status"] == "success", body
    return body["data"]["result"]


def prom_targets(url: str) -> list[dict]:
    return httpx.get(f"{url}/api/v1/targets", params={"state": "active"}, timeout=10).json()["data"]["activeTargets"]


def wait_targets_up(url: str, jobs: dict[str, int], timeout: float = 30) -> list[dict]:
    """Wait until each job has exactly the given number of targets, every one of them up."""

    def all_up():
        targets = prom_targets(url)
        by_job = {job: [t for t in targets if t["labels"]["job"] == job] for job in jobs}
        ok = all(len(by_job[job]) == n and all(t["health"] == "up" for t in by_job[job]) for job, n in jobs.items())
        return targets if ok else None

    return wait_for(all_up, timeout=timeout, what=f"Prometheus targets up: {jobs}")


# --- the app with running bots, as Prometheus sees it -------------------------------------
class WebApi:
    """The JSON API of a test gunicorn, as an operator's script calls it (token auth)."""

    def __init__(self, url: str, username: str = "observability-operator") -> None:
        from django.contrib.auth import get_user_model

        from bots.access import CHAT, MANAGE_ALL, OPERATE
        from tests.support.perms import grant
        from tests.support.tokens import api_key

        user, _ = get_user_model().objects.get_or_create(username=username)
        grant(user, OPERATE, CHAT, MANAGE_ALL)
        self.url = url
        self.headers = {"Authorization": f"Token {api_key(user)}"}

    def post(self, path: str, body: dict | None = None, **headers: str) -> httpx.Response:
        return httpx.post(f"{self.url}{path}", json=body or {}, headers={**self.headers, **headers}, timeout=30)

    def get(self, path: str) -> httpx.Response:
        return httpx.get(f"{self.url}{path}", headers=self.headers, timeout=30)

    def start_bots(self, bots) -> None:
        """Start bots through the API (a Celery worker must be running) and wait until they run."""
        from bots.models import Status

        for bot in bots:
            response = self.post(f"/api/bots/{bot.pk}/start")
            assert response.status_code == 202, response.text

        def all_running() -> bool:
            for bot in bots:
                bot.refresh_from_db()
            return all(bot.status == Status.RUNNING for bot in bots)

        wait_for(all_running, timeout=60, what="the bots running")

    def chat(self, bot, message: str, **headers: str) -> httpx.Response:
        response = self.post(f"/api/bots/{bot.pk}/messages", {"message": message}, **headers)
        assert response.status_code == 200, response.text
        return response


def wait_for_series(url: str, expr: str, timeout: float = 30) -> list[dict]:
    """Wait until an instant query returns at least one series (its result)."""
    return wait_for(lambda: prom_query(url, expr), timeout=timeout, what=f"Prometheus to return {expr}")


class ScrapedApp(NamedTuple):
    prometheus: str  # URL of the Prometheus
    web: str  # URL of the gunicorn it scrapes
    worker: Worker  # the Celery bots worker that started the bot
    api: WebApi
    bot: object  # the running echo bot (bots.models.Bot)


def start_scraped_app(gunicorn, prometheus, bot_worker, rule_files: tuple[Path, ...] = ()) -> ScrapedApp:
    """gunicorn (2 workers), a Celery worker, one echo bot started through the API and a
    Prometheus scraping them; then a few API requests, health checks and a chat. It returns
    once every family has been scraped at least twice since the traffic, so rate() and
    increase() have data.
    """
    from bots.models import Backend, Bot

    web = gunicorn(workers=2)
    worker = bot_worker("host-a")
    api = WebApi(web)
    bot = Bot.objects.create(name="Scraped", slug="scraped", backend=Backend.ECHO, model_name="echo")
    api.start_bots([bot])
    url = prometheus(deia_scrape_configs(web), rule_files)
    wait_targets_up(url, {"deia-web": 1, "deia-bots": 1})
    # Samples before the traffic, so that the traffic shows as an increase.
    wait_for_series(url, 'deia_bot_messages_total{bot="scraped"}')
    wait_for_series(url, "django_http_requests_total_by_method_total")
    for path in ("/api/bots", f"/api/bots/{bot.pk}", "/api/bots/999999"):
        api.get(path)
    for path in ("/health/ready", "/health/cache"):
        httpx.get(f"{web}{path}", timeout=10)
    api.chat(bot, "hello from the observability fixture")
    wait_for_series(url, 'increase(deia_bot_messages_total{bot="scraped"}[1m]) > 0')
    wait_for_series(url, 'increase(deia_bot_message_processing_seconds_count{bot="scraped"}[1m]) > 0')
    wait_for_series(url, "increase(django_http_responses_total_by_status_total[1m]) > 0")
    wait_for_series(url, "django_cache_get_misses_total")
    return ScrapedApp(url, web, worker, api, bot)


@pytest.fixture
def scraped_prometheus(gunicorn, prometheus, bot_worker) -> str:
    """URL of a Prometheus that has scraped the real app and a running bot under a little traffic
    (start_scraped_app)."""
    return start_scraped_app(gunicorn, prometheus, bot_worker).prometheus
