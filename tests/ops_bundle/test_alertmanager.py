"""Alertmanager configuration: valid, routed as the guide intends, no inline secrets."""

from __future__ import annotations

import json
import urllib.request

import pytest
import yaml

from tests.support.procs import wait_for

from .tools import DEPLOY, run

AM = DEPLOY / "alertmanager"
CONFIG = AM / "alertmanager.yml"

# Keys whose value would be a secret written in the file; their *_file twins are fine.
INLINE_SECRET_KEYS = {
    "slack_api_url",
    "api_url",
    "routing_key",
    "service_key",
    "smtp_auth_password",
    "auth_password",
    "api_key",
    "credentials",
    "password",
    "bearer_token",
    "smtp_auth_secret",
    "token",
}


def test_amtool_check_config_passes(amtool: str) -> None:
    result = run([amtool, "check-config", str(CONFIG)], cwd=AM)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


@pytest.mark.parametrize(
    ("labels", "receiver"),
    [
        (["alertname=PostgresDown", "severity=critical", "service=database"], "critical"),
        (["alertname=DeiaBotDown", "severity=warning", "service=bots"], "warning"),
        (["alertname=DeiaCacheHitRatioLow", "severity=info", "service=cache"], "info"),
        (["alertname=Watchdog", "severity=info", "service=monitoring"], "heartbeat"),
        (["alertname=DeiaHostLost", "severity=critical", "service=fleet", "host=bots-2"], "critical"),
        (["alertname=DeiaHostDrainingTooLong", "severity=warning", "service=fleet", "host=bots-2"], "warning"),
        (["alertname=SomethingUnlabelled"], "default"),
    ],
    ids=["critical", "warning", "info", "watchdog", "host-lost", "host-draining", "no-severity"],
)
def test_amtool_routes_each_severity_to_its_receiver(amtool: str, labels: list[str], receiver: str) -> None:
    result = run(
        [amtool, "config", "routes", "test", f"--config.file={CONFIG}", f"--verify.receivers={receiver}", *labels],
        cwd=AM,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.split() == [receiver], result.stdout


def receivers() -> dict[str, dict]:
    return {r["name"]: r for r in yaml.safe_load(CONFIG.read_text())["receivers"]}


def test_critical_pages_and_posts_warning_tickets_and_info_posts() -> None:
    recv = receivers()
    assert recv["critical"].get("pagerduty_configs") and recv["critical"].get("slack_configs")
    assert recv["warning"].get("slack_configs") and recv["warning"].get("email_configs")
    assert not recv["warning"].get("pagerduty_configs")
    assert recv["info"].get("slack_configs") and not recv["info"].get("pagerduty_configs")
    assert not recv["info"].get("email_configs")
    assert recv["heartbeat"].get("webhook_configs")


def walk(node, path=()):
    if isinstance(node, dict):
        for key, value in node.items():
            yield (*path, key), key, value
            yield from walk(value, (*path, key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from walk(value, (*path, i))


def test_no_secret_is_written_in_the_file() -> None:
    config = yaml.safe_load(CONFIG.read_text())
    inline = [".".join(map(str, p)) for p, key, _ in walk(config) if key in INLINE_SECRET_KEYS]
    assert not inline, f"secrets must come from *_file settings: {inline}"
    files = [v for _, key, v in walk(config) if str(key).endswith("_file")]
    assert files and all(str(f).startswith("/etc/alertmanager/secrets/") for f in files), files


def test_warnings_are_inhibited_by_a_critical_of_the_same_service() -> None:
    rules = yaml.safe_load(CONFIG.read_text())["inhibit_rules"]
    assert {
        "source_matchers": ['severity="critical"', 'alertname!="DeiaHostLost"'],
        "target_matchers": ['severity="warning"'],
        "equal": ["service"],
    } in rules


def test_each_lost_host_is_its_own_page() -> None:
    routes = yaml.safe_load(CONFIG.read_text())["route"]["routes"]
    (lost,) = [r for r in routes if r["matchers"] == ['alertname="DeiaHostLost"']]
    assert lost["receiver"] == "critical" and "host" in lost["group_by"]


# --- inhibition, in a running Alertmanager ------------------------------------------


def post_alerts(url: str, alerts: list[dict[str, str]]) -> None:
    body = json.dumps([{"labels": labels, "annotations": {"summary": "test"}} for labels in alerts]).encode()
    req = urllib.request.Request(
        f"{url}/api/v2/alerts", data=body, method="POST", headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(req, timeout=10) as resp:
        assert resp.status == 200


def alert_states(url: str) -> dict[tuple[str, str, str], str]:
    """(alertname, host, bot) -> active | suppressed, as Alertmanager's API shows them."""
    with urllib.request.urlopen(f"{url}/api/v2/alerts", timeout=10) as resp:
        alerts = json.load(resp)
    return {
        (a["labels"]["alertname"], a["labels"].get("host", ""), a["labels"].get("bot", "")): a["status"]["state"]
        for a in alerts
    }


def wait_for_states(url: str, expected: dict[tuple[str, str, str], str]) -> None:
    """Poll until Alertmanager shows exactly `expected` (its inhibitor reads new alerts asynchronously)."""
    seen: list[dict] = []

    def settled() -> bool:
        seen.append(alert_states(url))
        return seen[-1] == expected

    try:
        wait_for(settled, timeout=15, interval=0.2, what="the expected alert states")
    except AssertionError as exc:
        raise AssertionError(f"{exc}; last seen: {seen[-1] if seen else None}") from None


def test_a_lost_host_inhibits_its_own_bots_alerts_and_nothing_else(alertmanager_url: str) -> None:
    bot_down = {"alertname": "DeiaBotDown", "severity": "warning", "service": "bots", "job": "deia-bots"}
    post_alerts(
        alertmanager_url,
        [
            {"alertname": "DeiaHostLost", "severity": "critical", "service": "fleet", "host": "bots-2"},
            {**bot_down, "host": "bots-2", "bot": "alpha", "bot_id": "1", "instance": "10.0.0.2:8001"},
            {**bot_down, "host": "bots-2", "bot": "bravo", "bot_id": "2", "instance": "10.0.0.2:8002"},
            {
                "alertname": "DeiaChatsRejected",
                "severity": "warning",
                "service": "bots",
                "host": "bots-2",
                "bot": "alpha",
            },
            {"alertname": "DeiaHostDrainingTooLong", "severity": "warning", "service": "fleet", "host": "bots-2"},
            # a bot of a healthy host (perhaps one just moved there) still tells, and so
            # does another host's drain
            {**bot_down, "host": "bots-1", "bot": "charlie", "bot_id": "3", "instance": "10.0.0.1:8001"},
            {"alertname": "DeiaHostDrainingTooLong", "severity": "warning", "service": "fleet", "host": "bots-3"},
            # fleet-wide bot alerts carry no host: a lost host must not hide them
            {"alertname": "DeiaMessageLatencyHigh", "severity": "warning", "service": "bots"},
            {"alertname": "DeiaBotStartErrors", "severity": "warning", "service": "bots"},
        ],
    )
    # Waiting for the suppressed ones proves the inhibitor has seen DeiaHostLost, so the
    # ones still active at that moment are really not inhibited by it.
    wait_for_states(
        alertmanager_url,
        {
            ("DeiaHostLost", "bots-2", ""): "active",
            ("DeiaBotDown", "bots-2", "alpha"): "suppressed",
            ("DeiaBotDown", "bots-2", "bravo"): "suppressed",
            ("DeiaChatsRejected", "bots-2", "alpha"): "suppressed",
            ("DeiaHostDrainingTooLong", "bots-2", ""): "suppressed",
            ("DeiaBotDown", "bots-1", "charlie"): "active",
            ("DeiaHostDrainingTooLong", "bots-3", ""): "active",
            ("DeiaMessageLatencyHigh", "", ""): "active",
            ("DeiaBotStartErrors", "", ""): "active",
        },
    )


def test_alerts_are_grouped() -> None:
    route = yaml.safe_load(CONFIG.read_text())["route"]
    assert "service" in route["group_by"] and "alertname" in route["group_by"]
    for key in ("group_wait", "group_interval", "repeat_interval"):
        assert key in route


def test_templates_render(amtool: str, tmp_path) -> None:
    data = {
        "receiver": "critical",
        "status": "firing",
        "alerts": [
            {
                "status": "firing",
                "labels": {"alertname": "PostgresDown", "severity": "critical", "service": "database"},
                "annotations": {
                    "summary": "PostgreSQL is down",
                    "description": "pg_up is 0",
                    "runbook_url": "https://example/docs/runbooks/postgres-down.md",
                },
                "startsAt": "2026-01-01T00:00:00Z",
                "endsAt": "0001-01-01T00:00:00Z",
            }
        ],
        "groupLabels": {"alertname": "PostgresDown"},
        "commonLabels": {"alertname": "PostgresDown", "severity": "critical", "service": "database"},
        "commonAnnotations": {},
        "externalURL": "http://127.0.0.1:9093",
    }
    data_file = tmp_path / "data.json"
    data_file.write_text(json.dumps(data))
    result = run(
        [
            amtool,
            "template",
            "render",
            "--template.glob=templates/*.tmpl",
            f"--template.data={data_file}",
            '--template.text={{ template "deia.title" . }}|{{ template "deia.text" . }}',
        ],
        cwd=AM,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "CRITICAL PostgresDown (database)" in result.stdout
    assert "docs/runbooks/postgres-down.md" in result.stdout
