"""What the docs say agrees with what ships: links resolve, runbook PromQL is the recording
rules' own, and nginx serves static files from where setup collects them."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from .tools import DEPLOY, REPO

DOCS = [REPO / "README.md", *sorted((REPO / "docs").rglob("*.md"))]
# [text](target) with a target that is not a URL, a mail address or an anchor in the page.
LINK = re.compile(r"\[[^\]]*\]\(\s*([^)\s]+)[^)]*\)")
RULES = DEPLOY / "prometheus" / "rules" / "recording.yml"


def relative_links(page: Path) -> list[str]:
    targets = LINK.findall(page.read_text())
    return [t for t in targets if not re.match(r"^([a-z][a-z0-9+.-]*:|#)", t)]


@pytest.mark.parametrize("page", DOCS, ids=lambda p: str(p.relative_to(REPO)))
def test_every_relative_link_points_at_a_file_that_exists(page: Path) -> None:
    missing = [t for t in relative_links(page) if not (page.parent / t.split("#")[0]).exists()]
    assert not missing, f"{page.relative_to(REPO)} links to missing files: {missing}"


def test_the_link_check_sees_the_links_it_checks() -> None:
    assert "ARCHITECTURE.md" in relative_links(REPO / "docs" / "OBSERVABILITY.md")
    assert "service-outage.md" in relative_links(REPO / "docs" / "runbooks" / "README.md")


def recording_rules() -> dict[str, str]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return {rule["record"]: rule["expr"] for group in groups for rule in group["rules"] if "record" in rule}


def squash(expr: str) -> str:
    return re.sub(r"\s+", "", expr)


def shape(expr: str) -> str:
    """The expression without its label matchers: how a copy that lost a filter is recognised."""
    return re.sub(r"\{[^}]*\}", "", squash(expr))


def inline_expressions(text: str) -> list[str]:
    """PromQL written out in a page: `inline code` and the argument of `promq '...'`."""
    return re.findall(r"`([^`\n]+)`", text) + re.findall(r"promq '([^'\n]+)'", text)


@pytest.mark.parametrize("page", DOCS, ids=lambda p: str(p.relative_to(REPO)))
def test_an_expression_standing_for_a_recording_rule_is_the_rule_s_own(page: Path) -> None:
    text = page.read_text()
    wrong = [
        (record, expr)
        for record, rule in recording_rules().items()
        for expr in inline_expressions(text)
        if shape(expr) == shape(rule) and squash(expr) != squash(rule)
    ]
    assert not wrong, f"{page.relative_to(REPO)}: these differ from their recording rule: {wrong}"


def test_a_copy_that_lost_the_rule_s_filter_is_caught() -> None:
    rule = recording_rules()["deia_web:http_request_duration_seconds:p95_rate5m"]
    unfiltered = re.sub(r"\{[^}]*\}", "", rule)
    assert shape(unfiltered) == shape(rule) and squash(unfiltered) != squash(rule)


def env_example() -> dict[str, str]:
    lines = (DEPLOY / "systemd" / "deia.env.example").read_text().splitlines()
    return dict(line.split("=", 1) for line in lines if "=" in line and not line.startswith("#"))


def test_nginx_serves_static_files_from_where_setup_collects_them() -> None:
    site = (DEPLOY / "nginx" / "deia.conf").read_text()
    alias = re.search(r"location /static/ \{[^}]*alias\s+([^;\s]+);", site)
    assert alias, "no alias in nginx's location /static/"
    static_root = env_example().get("STATIC_ROOT")
    assert static_root, "deia.env.example leaves STATIC_ROOT to its default under the private state directory"
    assert Path(alias.group(1)) == Path(static_root)


def test_the_docs_do_not_describe_conn_health_checks_as_a_switch() -> None:
    from deia.config import Env

    db = Env({}).database("DATABASE_URL", "postgres://deia@db/deia", {})
    assert db["CONN_HEALTH_CHECKS"] is True
    for page in DOCS:
        switched = re.findall(r"CONN_HEALTH_CHECKS\s*(?:off|on|=|set to)", page.read_text())
        assert not switched, f"{page.relative_to(REPO)} treats CONN_HEALTH_CHECKS as a setting: {switched}"
