"""A real Prometheus scrapes the web app and, through HTTP service discovery, the running bots."""

from __future__ import annotations

import pytest

from tests.plugins.observability import (
    WEB_CONTRACT,
    deia_scrape_configs,
    prom_query,
    prom_targets,
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
