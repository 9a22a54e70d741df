"""The admin index is the System Overview: who sees which figures, graded in colour and in
words against the guide's targets, with a bounded number of queries."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.core.cache import cache
from django.test import override_settings
from django.urls import reverse
from django.utils import timezone

from bots.access import MANAGE_ALL
from bots.models import Bot, Status
from ops.console import overview, samples
from ops.diagnose import CACHE_KEY as DIAGNOSE_KEY
from ops.models import MaintenanceRun
from tests.support.procs import free_port

pytestmark = pytest.mark.django_db
INDEX = reverse("admin:index")
VIEW = "ops.view_operations"


@pytest.fixture(autouse=True)
def fresh_figures(settings):
    settings.DIAGNOSE_TIMEOUT = 1
    settings.PROMETHEUS_URL = None
    for key in (overview.CACHE_KEY, DIAGNOSE_KEY):
        cache.delete(key)
    yield
    for key in (overview.CACHE_KEY, DIAGNOSE_KEY):
        cache.delete(key)


def tile(html: str, key: str) -> tuple[str, str, str]:
    """(level, words, value) of one tile of the page."""
    found = re.search(
        rf'id="tile-{re.escape(key)}" data-level="(\w+)">.*?class="console-value">(.*?)</p>.*?'
        r'class="console-level">(.*?)</span>',
        html,
        re.S,
    )
    assert found, f"no tile {key}"
    return found[1], found[3], found[2]


def test_anonymous_and_non_staff_users_are_sent_to_sign_in(admin_as, make_user):
    for user in (None, make_user(VIEW, staff=False)):
        response = admin_as(user).get(INDEX)
        assert response.status_code == 302 and response["Location"].startswith(reverse("admin:login"))


def test_staff_without_the_permission_get_the_model_list_and_why_no_figures(admin_as, make_user, own_bot):
    html = admin_as(make_user("bots.view_bot")).get(INDEX).content.decode()
    assert "console-refused" in html and "ops.view_operations" in html
    assert 'id="console-tiles"' not in html and 'class="deia-chart"' not in html
    assert reverse("admin:bots_bot_changelist") in html  # the model list, in place of the figures


def test_bot_counts_are_of_the_bots_the_user_may_see_unless_a_manager(admin_as, make_user, own_bot, other_bot):
    Bot.objects.filter(pk=own_bot.pk).update(status=Status.RUNNING)
    Bot.objects.filter(pk=other_bot.pk).update(status=Status.ERROR)
    html = admin_as(make_user(VIEW)).get(INDEX).content.decode()
    assert tile(html, "bots_running")[2] == "1 / 10"
    # The other team's bot in error is not theirs to see, nor to be alarmed by.
    assert tile(html, "bots_by_status") == ("ok", "Good", "1 running")
    html = admin_as(make_user(VIEW, MANAGE_ALL)).get(INDEX).content.decode()
    level, words, value = tile(html, "bots_by_status")
    assert (level, words, value) == ("crit", "Critical", "1 running, 1 error")
    assert f"{reverse('admin:bots_bot_changelist')}?status__exact=error" in html


def test_allowed_users_see_every_figure_graded_against_the_targets_and_the_charts(admin_as, make_user):
    now = timezone.now()
    minute = samples.minute_of(now)
    rows = []
    for i in range(1, 4):
        at = minute - timedelta(minutes=i)
        rows += [
            (at, 60, samples.REQUESTS, "", 1000),
            (at, 60, samples.ERRORS, "", 3),  # 0.3 %: within the 0.5 % target
            (at, 60, samples.LATENCY, "0.5", 1000),  # p95 in (0.3, 0.5] s: past 200 ms, not 2 s
            (at, 60, samples.HEALTH_MINUTES, "", 1),
            (at, 60, samples.HEALTH_OK, "", 1),
            (at, 60, samples.CACHE_HITS, "", 10),
            (at, 60, samples.CACHE_MISSES, "", 90),  # 10 %: below the critical 30 %
        ]
    samples.upsert(rows, add=True)
    html = admin_as(make_user(VIEW)).get(INDEX).content.decode()
    assert tile(html, "availability_24 h") == ("ok", "Good", "100.00 %")
    assert tile(html, "api_error_ratio_5 min") == ("ok", "Good", "0.30 %")
    assert tile(html, "api_p95_seconds_5 min") == ("warn", "Warning", "490 ms")
    assert tile(html, "cache_hit_ratio_1 h") == ("crit", "Critical", "10.00 %")
    assert tile(html, "request_rate_5 min")[:2] == ("info", "For information")
    # No message was sampled: no data, never a green zero.
    assert tile(html, "message_p95_seconds_5 min") == ("none", "No data", "no data")
    assert "target ≤ 200 ms" in html and "deia-api-latency-high.md" in html
    assert html.count('class="deia-chart"') == 6 and html.count("as a table</summary>") == 6
    assert reverse("admin:ops_operations") in html and reverse("admin-models") in html


def test_the_page_costs_a_bounded_number_of_queries_and_less_once_cached(
    admin_as, make_user, own_bot, other_bot, django_assert_max_num_queries
):
    browser = admin_as(make_user(VIEW))
    with django_assert_max_num_queries(30):
        assert browser.get(INDEX).status_code == 200
    with django_assert_max_num_queries(6):
        assert browser.get(INDEX).status_code == 200


def test_the_model_list_has_its_own_page(admin_as, make_user):
    html = admin_as(make_user(VIEW, "bots.view_bot")).get(reverse("admin-models")).content.decode()
    assert reverse("admin:bots_bot_changelist") in html


@pytest.mark.parametrize(
    ("figure", "value", "level"),
    [
        ("availability", 0.995, "ok"),
        ("availability", 0.9949, "warn"),
        ("availability", 0.9899, "crit"),
        ("api_p95_seconds", 0.2, "ok"),
        ("api_p95_seconds", 0.201, "warn"),
        ("api_p95_seconds", 2.01, "crit"),
        ("api_error_ratio", 0.005, "ok"),
        ("api_error_ratio", 0.0051, "warn"),
        ("api_error_ratio", 0.0101, "crit"),
        ("message_p95_seconds", 0.5, "ok"),
        ("message_p95_seconds", 0.51, "warn"),
        ("api_p95_seconds", None, "none"),
    ],
)
def test_levels_at_the_thresholds(figure, value, level):
    assert overview.TARGETS[overview.Figure(figure)].level(value) == level


def test_an_unreachable_prometheus_is_said_once_and_its_figures_are_no_data(admin_as, make_user, settings):
    settings.PROMETHEUS_URL = f"http://scraper:s3cret-pass@127.0.0.1:{free_port()}"
    html = admin_as(make_user(VIEW)).get(INDEX).content.decode()
    assert 'id="console-source-error"' in html and "did not answer" in html
    assert "s3cret-pass" not in html
    assert tile(html, "availability_24 h") == ("none", "No data", "no data")
    # What the application knows itself is still there.
    assert tile(html, "failing_jobs")[:2] == ("ok", "Good")


def test_a_job_whose_last_run_failed_is_named_until_it_runs_well(admin_as, make_user):
    failed = MaintenanceRun.objects.create(
        job="vacuum", status=MaintenanceRun.Status.FAILED, finished_at=timezone.now(), summary="VACUUM failed"
    )
    browser = admin_as(make_user(VIEW))
    html = browser.get(INDEX).content.decode()
    assert tile(html, "failing_jobs") == ("warn", "Warning", "vacuum")
    MaintenanceRun.objects.create(
        job="vacuum",
        status=MaintenanceRun.Status.OK,
        started_at=failed.started_at + timedelta(hours=1),
        finished_at=failed.started_at + timedelta(hours=1),
    )
    cache.delete(overview.CACHE_KEY)
    assert tile(browser.get(INDEX).content.decode(), "failing_jobs") == ("ok", "Good", "none")


def test_the_page_answers_with_the_cache_down(admin_as, make_user):
    browser = admin_as(make_user(VIEW))
    down = {
        "BACKEND": "django_redis.cache.RedisCache",
        "LOCATION": f"redis://127.0.0.1:{free_port()}/0",
        "OPTIONS": {"SOCKET_CONNECT_TIMEOUT": 0.5, "SOCKET_TIMEOUT": 0.5},
    }
    with override_settings(CACHES={"default": down}):
        response = browser.get(INDEX)
    assert response.status_code == 200 and 'id="console-tiles"' in response.content.decode()
