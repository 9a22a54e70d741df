"""Under gunicorn with several workers, /metrics is the sum over all of them and never goes backwards."""

from __future__ import annotations

import os
import signal
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from prometheus_client.mmap_dict import MmapedDict
from prometheus_client.parser import text_string_to_metric_families

from bots.lifecycle.process import pid_alive
from tests.plugins.observability import value
from tests.support.procs import children, http_ok, wait_for

pytestmark = pytest.mark.django_db(transaction=True)

VIEW = "prometheus-targets"  # a view nothing but the test requests
PATH = "/api/prometheus/targets"


def hammer(url: str, n: int) -> None:
    """n requests from several clients at once, so that every worker takes some."""

    def one(_: int) -> int:
        return httpx.get(f"{url}{PATH}", timeout=10).status_code

    with ThreadPoolExecutor(max_workers=6) as pool:
        assert set(pool.map(one, range(n))) == {200}


def monotonic_samples(url: str) -> dict[tuple[str, frozenset], float]:
    """Every counter and histogram sample of a scrape (the kinds that must never decrease)."""
    text = httpx.get(f"{url}/metrics", timeout=10).text
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        if family.type in ("counter", "histogram")
        for sample in family.samples
    }


def scrape_all(url: str) -> dict[tuple[str, frozenset], float]:
    from tests.plugins.observability import scrape

    return scrape(url)


worker_pids = children  # a gunicorn master's workers


def requests_by_pid(metrics_dir: Path) -> dict[int, float]:
    """What each worker's own file says it served of VIEW: proof the load was spread."""
    served: dict[int, float] = {}
    for path in metrics_dir.glob("counter_*.db"):
        pid = int(path.stem.split("_")[-1])
        for key, count, *_ in MmapedDict.read_all_values_from_file(str(path)):
            if "django_http_requests_total_by_view_transport_method" in key and f'"{VIEW}"' in key:
                served[pid] = served.get(pid, 0) + count
    return served


def test_three_workers_report_exactly_the_requests_they_served(gunicorn, tmp_path):
    # One pool (no workers of their own for chats): every worker takes some of the requests.
    url = gunicorn(workers=3, GUNICORN_CHAT_WORKERS="0")
    hammer(url, 300)
    samples = scrape_all(url)
    assert value(samples, "django_http_requests_total_by_view_transport_method_total", view=VIEW) == 300
    assert value(samples, "django_http_requests_latency_seconds_by_view_method_count", view=VIEW) == 300
    assert value(samples, "django_http_responses_total_by_status_view_method_total", view=VIEW, status="200") == 300
    served = requests_by_pid(tmp_path / "var" / "metrics")
    assert sum(served.values()) == 300
    assert len([pid for pid, n in served.items() if n]) >= 2, served


def test_killing_a_worker_never_makes_a_counter_go_backwards(gunicorn, tmp_path):
    url = gunicorn(workers=3, GUNICORN_CHAT_WORKERS="0")
    master = gunicorn.proc.pid
    wait_for(lambda: len(worker_pids(master)) == 3, timeout=30, what="three workers")
    hammer(url, 120)
    before = monotonic_samples(url)
    assert value(before, "django_http_requests_total_by_view_transport_method_total", view=VIEW) == 120

    workers = worker_pids(master)
    victim = max(requests_by_pid(tmp_path / "var" / "metrics").items(), key=lambda item: item[1])[0]
    assert victim in workers
    os.kill(victim, signal.SIGKILL)
    wait_for(lambda: not pid_alive(victim), timeout=10, what="the killed worker to die")
    wait_for(
        lambda: len(worker_pids(master)) == 3 and victim not in worker_pids(master),
        timeout=30,
        what="gunicorn to replace the killed worker",
    )
    wait_for(lambda: http_ok(f"{url}/health"), timeout=30, what="/health after the replacement")

    for _ in range(10):  # several scrapes, answered by old and new workers alike
        after = monotonic_samples(url)
        # Only the dead worker's own process_* series (labelled with its pid) may end.
        gone = {key for key in before if key not in after}
        assert gone == {key for key in before if ("pid", str(victim)) in key[1]}, gone
        went_back = {key: (before[key], after[key]) for key in before if key not in gone and after[key] < before[key]}
        assert not went_back, went_back

    hammer(url, 30)
    samples = scrape_all(url)
    assert value(samples, "django_http_requests_total_by_view_transport_method_total", view=VIEW) == 150


def test_pool_gauges_sum_the_live_workers_only(gunicorn, settings):
    url = gunicorn(workers=3)
    master = gunicorn.proc.pid
    total = 3 * settings.DB_POOL_MAX  # the children share this process's DATABASE_URL
    assert total > 0

    def pool_max_is_total():
        samples = scrape_all(url)
        return samples if value(samples, "deia_db_pool_max") == total else None

    wait_for(pool_max_is_total, timeout=30, what=f"deia_db_pool_max == {total} (every worker booted)")
    victim = sorted(worker_pids(master))[0]
    os.kill(victim, signal.SIGKILL)
    wait_for(lambda: len(worker_pids(master)) == 3 and victim not in worker_pids(master), timeout=30)
    wait_for(lambda: http_ok(f"{url}/health"), timeout=30, what="/health after the replacement")
    # The dead worker's gauges left the sum (else it would exceed the total); the
    # replacement counts from its start.
    samples = wait_for(pool_max_is_total, timeout=30, what=f"deia_db_pool_max == {total} after the replacement")
    in_use = value(samples, "deia_db_pool_connections", state="in_use")
    idle = value(samples, "deia_db_pool_connections", state="idle")
    assert in_use + idle >= 1  # the workers that answered scrapes keep a connection open
    assert in_use + idle <= total


def test_a_restart_wipes_the_counts_of_the_previous_run_and_nothing_else(gunicorn, tmp_path):
    url = gunicorn(workers=2)
    hammer(url, 7)
    gunicorn.proc.stop()
    metrics_dir = tmp_path / "var" / "metrics"
    assert list(metrics_dir.glob("counter_*.db")), "the first run left its files"
    keep = metrics_dir / "README.operator"
    keep.write_text("not prometheus_client's")
    url = gunicorn(workers=2)
    hammer(url, 2)
    samples = scrape_all(url)
    assert value(samples, "django_http_requests_total_by_view_transport_method_total", view=VIEW) == 2
    assert keep.exists()


def test_the_latency_histogram_has_buckets_at_the_guides_targets(gunicorn):
    url = gunicorn(workers=1)
    hammer(url, 1)
    text = httpx.get(f"{url}/metrics", timeout=10).text
    bounds = {
        sample.labels["le"]
        for family in text_string_to_metric_families(text)
        if family.name == "django_http_requests_latency_seconds_by_view_method"
        for sample in family.samples
        if sample.name.endswith("_bucket") and sample.labels.get("view") == VIEW
    }
    assert {"0.2", "2.0"} <= bounds, bounds
