"""Prometheus configuration, recording and alert rules, and their promtool tests."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from urllib.parse import urlparse

import pytest
import yaml

from .tools import DEPLOY, RUNBOOKS, run

PROM = DEPLOY / "prometheus"
CONFIG = PROM / "prometheus.yml"
RULE_FILES = sorted((PROM / "rules").glob("*.yml"))
ALERTS = PROM / "rules" / "alerts.yml"
RULE_TESTS = sorted((PROM / "tests").glob("*.yml"))

SEVERITIES = {"critical", "warning", "info"}
# fleet: the bots hosts as members of the fleet (DeiaHostLost, DeiaHostDrainingTooLong);
# host: the machines (node_exporter).
SERVICES = {"web", "bots", "fleet", "database", "cache", "llm", "host", "backup", "maintenance", "monitoring"}
# The guide's four runbooks, kept (corrected) beside the one-page-per-alert runbooks.
GUIDE_RUNBOOKS = {"service-outage.md", "high-memory-usage.md", "database-connections.md", "high-error-rate.md"}

# What the app exports (docs/ARCHITECTURE contract) and django-prometheus' families.
APP_METRICS = {
    "deia_bots",
    "deia_bots_max",
    "deia_hosts",
    "deia_host_bots",
    "deia_host_capacity",
    "deia_host_state",
    "deia_host_draining_since_timestamp_seconds",
    "deia_bot_reschedules_total",
    "deia_bot_starts_total",
    "deia_bot_start_errors_total",
    "deia_bot_startup_seconds",
    "deia_bot_crashes_total",
    "deia_bot_restarts_total",
    "deia_bot_messages_total",
    "deia_bot_message_errors_total",
    "deia_bot_message_processing_seconds",
    "deia_llm_request_seconds",
    "deia_llm_tokens_total",
    "deia_bot_first_token_seconds",
    "deia_chats_in_flight",
    "deia_chat_rejected_total",
    "deia_db_pool_connections",
    "deia_db_pool_max",
    "deia_backup_last_success_timestamp_seconds",
    "deia_backup_size_bytes",
    "deia_backup_first_due_timestamp_seconds",
    "deia_maintenance_runs_total",
    "deia_maintenance_last_success_timestamp_seconds",
    "deia_task_rejected_total",
    "deia_health_check_up",
    "django_http_requests_total_by_method_total",
    "django_http_responses_total_by_status_total",
    "django_http_requests_latency_seconds_by_view_method",
    "django_db_query_duration_seconds",
    "django_db_execute_total",
    "django_db_errors_total",
    "django_db_new_connections_total",
    "django_cache_get_total",
    "django_cache_get_hits_total",
    "django_cache_get_misses_total",
    "django_cache_get_fail_total",
}
APP_METRIC = re.compile(r"(?<![\w:])(?:deia|django)_[A-Za-z0-9_]*(?![\w:])")


def alert_rules() -> list[dict]:
    groups = yaml.safe_load(ALERTS.read_text())["groups"]
    return [rule for g in groups for rule in g["rules"] if "alert" in rule]


def all_rules() -> list[dict]:
    return [r for f in RULE_FILES for g in yaml.safe_load(f.read_text())["groups"] for r in g["rules"]]


def scrape_jobs() -> dict[str, dict]:
    return {job["job_name"]: job for job in yaml.safe_load(CONFIG.read_text())["scrape_configs"]}


def static_targets(job: dict) -> list[str]:
    return [t for sc in job.get("static_configs", []) for t in sc["targets"]]


# --- configuration ------------------------------------------------------------------


def test_promtool_check_config_passes(promtool: str) -> None:
    result = run([promtool, "check", "config", str(CONFIG)], cwd=PROM)
    assert result.returncode == 0, result.stdout + result.stderr


def test_it_scrapes_every_component_on_its_real_port() -> None:
    jobs = scrape_jobs()
    assert static_targets(jobs["deia-web"]) == ["127.0.0.1:8000"]
    assert jobs["deia-web"].get("metrics_path", "/metrics") == "/metrics"
    assert static_targets(jobs["prometheus"]) == ["127.0.0.1:9090"]
    assert static_targets(jobs["alertmanager"]) == ["127.0.0.1:9093"]
    assert static_targets(jobs["postgres"]) == ["127.0.0.1:9187"]
    assert static_targets(jobs["redis"]) == ["127.0.0.1:9121"]
    assert static_targets(jobs["node"]) == ["127.0.0.1:9100"]
    # The guide's mistakes: database ports are not HTTP, 9090 is Prometheus itself.
    every_target = [t for job in jobs.values() for t in static_targets(job)]
    assert not [t for t in every_target if t.endswith((":5432", ":6379"))]
    assert "127.0.0.1:9090" not in static_targets(jobs["deia-web"])


def test_it_discovers_running_bots_through_the_app() -> None:
    bots = scrape_jobs()["deia-bots"]
    (sd,) = bots["http_sd_configs"]
    url = urlparse(sd["url"])
    assert (url.hostname, url.port, url.path) == ("127.0.0.1", 8000, "/api/prometheus/targets")
    assert bots.get("honor_labels") is True, "the bot's own `bot` label must not become exported_bot"


def test_it_sends_alerts_to_alertmanager() -> None:
    config = yaml.safe_load(CONFIG.read_text())
    targets = [t for am in config["alerting"]["alertmanagers"] for sc in am["static_configs"] for t in sc["targets"]]
    assert targets == ["127.0.0.1:9093"]


# --- rules -----------------------------------------------------------------------------


def test_promtool_check_rules_passes(promtool: str) -> None:
    result = run([promtool, "check", "rules", *map(str, RULE_FILES)])
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_rule_unit_tests_pass(promtool: str) -> None:
    assert RULE_TESTS, "no rule tests under deploy/prometheus/tests/"
    # One promtool per file, side by side: the long-window files take a few seconds each.
    procs = {
        path.name: subprocess.Popen(
            [promtool, "test", "rules", path.name],
            cwd=path.parent,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for path in RULE_TESTS
    }
    failures = []
    for name, proc in procs.items():
        out, _ = proc.communicate(timeout=120)
        if proc.returncode != 0:
            failures.append(f"--- {name}\n{out}")
    assert not failures, "\n".join(failures)


def test_every_rule_reads_only_metrics_that_something_exports() -> None:
    unknown = set()
    for rule in all_rules():
        for name in APP_METRIC.findall(rule["expr"]):
            base = re.sub(r"_(bucket|sum|count)$", "", name)
            if name not in APP_METRICS and base not in APP_METRICS:
                unknown.add(name)
    assert not unknown, f"rules read metrics nothing exports: {sorted(unknown)}"


def test_every_alert_has_for_severity_service_summary_description_and_runbook() -> None:
    problems = []
    for rule in alert_rules():
        name, labels, ann = rule["alert"], rule.get("labels", {}), rule.get("annotations", {})
        if "for" not in rule:
            problems.append(f"{name}: no for")
        if labels.get("severity") not in SEVERITIES:
            problems.append(f"{name}: severity {labels.get('severity')!r}")
        if labels.get("service") not in SERVICES:
            problems.append(f"{name}: service {labels.get('service')!r}")
        for key in ("summary", "description", "runbook_url"):
            if not ann.get(key):
                problems.append(f"{name}: no {key}")
    assert not problems, problems


def test_descriptions_format_values_with_units() -> None:
    # A raw {{ $value }} prints 0.0123 for 1.23 % or 0.48 for 480 ms.
    for rule in alert_rules():
        desc = rule["annotations"]["description"]
        values = re.findall(r"\{\{\s*\$value\s*([^}]*)\}\}", desc)
        for fmt in values:
            assert re.search(r"\|\s*(humanizeDuration|humanizePercentage|humanize)\b", fmt), (rule["alert"], desc)


def test_every_alert_links_to_its_own_runbook_page_that_exists() -> None:
    for rule in alert_rules():
        url = rule["annotations"]["runbook_url"]
        path = urlparse(url).path
        assert "/docs/runbooks/" in path, url
        page = path.rsplit("/", 1)[1]
        kebab = re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[a-z])(?=[0-9])", "-", rule["alert"]).lower()
        assert page == f"{kebab}.md", f"{rule['alert']}: runbook {page}, expected {kebab}.md"
        assert (RUNBOOKS / page).is_file(), f"{rule['alert']}: {RUNBOOKS / page} is missing"


def test_every_runbook_page_is_linked_from_an_alert_or_is_a_guide_runbook() -> None:
    linked = {urlparse(r["annotations"]["runbook_url"]).path.rsplit("/", 1)[1] for r in alert_rules()}
    pages = {p.name for p in RUNBOOKS.glob("*.md")} - {"README.md"}
    assert pages >= GUIDE_RUNBOOKS, f"missing guide runbooks: {GUIDE_RUNBOOKS - pages}"
    orphans = pages - linked - GUIDE_RUNBOOKS
    assert not orphans, f"runbooks no alert links to: {sorted(orphans)}"


def test_required_alerts_exist() -> None:
    names = {r["alert"] for r in alert_rules()}
    required = {
        "DeiaWebDown",
        "DeiaWebAbsent",
        "DeiaErrorBudgetBurn",
        "DeiaApiLatencyHigh",
        "DeiaMessageLatencyHigh",
        "DeiaBotStartErrors",
        "DeiaBotCrashLoop",
        "DeiaBotDown",
        "PostgresDown",
        "PostgresConnectionsHigh",
        "RedisDown",
        "RedisMemoryNearMax",
        "DeiaLlmBackendDown",
        "HostDiskSpaceLow",
        "HostDiskWillFillIn24h",
        "HostMemoryLow",
        "DeiaBackupTooOld",
        "DeiaRestoreCheckFailing",
        "DeiaMaintenanceJobFailed",
        "DeiaHostLost",
        "DeiaHostDrainingTooLong",
        "Watchdog",
    }
    assert required <= names, required - names


def test_error_budget_burn_uses_the_workbook_windows_and_factors() -> None:
    burn = {r["labels"]["severity"]: r["expr"] for r in alert_rules() if r["alert"] == "DeiaErrorBudgetBurn"}
    squash = {k: re.sub(r"\s+", "", v) for k, v in burn.items()}
    for window in ("1h", "5m", "6h", "30m"):
        assert f"ratio_rate{window}>" in squash["critical"]
    assert "(14.4*0.005)" in squash["critical"] and "(6*0.005)" in squash["critical"]
    assert "(3*0.005)" in squash["warning"] and "ratio_rate3d>0.005" in squash["warning"]


def test_rule_tests_evaluate_recording_groups_before_alert_groups() -> None:
    # promtool orders groups randomly unless told; alerts on recording rules then flake.
    groups = [g["name"] for f in RULE_FILES for g in yaml.safe_load(f.read_text())["groups"]]
    recording = [g for f in RULE_FILES for g in yaml.safe_load(f.read_text())["groups"] if "alert" not in g["rules"][0]]
    for path in RULE_TESTS:
        order = yaml.safe_load(path.read_text()).get("group_eval_order", [])
        assert sorted(order) == sorted(groups), f"{path.name}: group_eval_order must list every group"
        assert order[: len(recording)] == [g["name"] for g in recording], f"{path.name}: recording groups first"


def rule_test_cases() -> dict[str, dict[str, int]]:
    """alertname -> {"fires": n, "quiet": n} over every alert_rule_test of every file."""
    seen: dict[str, dict[str, int]] = {}
    for path in RULE_TESTS:
        for test in yaml.safe_load(path.read_text())["tests"]:
            for case in test.get("alert_rule_test", []):
                kind = "fires" if case.get("exp_alerts") else "quiet"
                seen.setdefault(case["alertname"], {"fires": 0, "quiet": 0})[kind] += 1
    return seen


@pytest.mark.parametrize("alertname", sorted({r["alert"] for r in alert_rules()}))
def test_every_alert_has_a_firing_case_and_a_close_quiet_case(alertname: str) -> None:
    cases = rule_test_cases().get(alertname, {"fires": 0, "quiet": 0})
    assert cases["fires"] >= 1, f"{alertname}: no promtool case where it fires"
    assert cases["quiet"] >= 1, f"{alertname}: no promtool case where it must stay quiet"


def test_every_severity_of_a_multi_severity_alert_is_tested_firing() -> None:
    fired: dict[str, set[str]] = {}
    for path in RULE_TESTS:
        for test in yaml.safe_load(path.read_text())["tests"]:
            for case in test.get("alert_rule_test", []):
                for alert in case.get("exp_alerts") or []:
                    fired.setdefault(case["alertname"], set()).add(alert["exp_labels"]["severity"])
    for rule in alert_rules():
        assert rule["labels"]["severity"] in fired.get(rule["alert"], set()), (
            f"{rule['alert']} at severity {rule['labels']['severity']} never fires in a rule test"
        )


def test_rule_tests_cover_the_guides_counter_pitfall() -> None:
    # A failed-runs series that first appears at 1 is invisible to increase(); the
    # maintenance alert catches it, and a rule test proves it.
    text = (PROM / "tests" / "backup_test.yml").read_text()
    assert "first appears at 1" in text


def test_rule_files_are_listed_in_the_config() -> None:
    listed = yaml.safe_load(CONFIG.read_text())["rule_files"]
    assert sorted(Path(p).name for p in listed) == sorted(p.name for p in RULE_FILES)


def test_runbook_links_between_pages_resolve() -> None:
    broken = []
    for page in RUNBOOKS.glob("*.md"):
        for target in re.findall(r"\]\(([^)#:]+\.md)\)", page.read_text()):
            if not (page.parent / target).is_file():
                broken.append(f"{page.name} -> {target}")
    assert not broken, broken


@pytest.mark.parametrize("page", sorted(p.name for p in RUNBOOKS.glob("*.md") if p.name != "README.md"))
def test_each_runbook_says_how_to_confirm_fix_and_verify(page: str) -> None:
    text = (RUNBOOKS / page).read_text()
    assert re.search(r"^## .*(Confirm|diagnosis)", text, re.M | re.I), f"{page}: no confirm/diagnosis section"
    assert re.search(r"^## .*(Fix|recovery)", text, re.M | re.I), f"{page}: no fix section"
    assert re.search(r"^## Verify recovery", text, re.M), f"{page}: no verify section"
    # The guide's wrong commands may only be quoted in the "what changed" section.
    body = text.split("## What changed from the guide")[0]
    for wrong in ("deia-bot-controller", "npm ", ".sql.gz", "MAX_BOTS=0", "FROM pg_stat_statements"):
        assert wrong not in body, f"{page}: {wrong!r}"
