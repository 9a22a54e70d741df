"""The capacity page and the reports against the permission matrix.

Both show fleet-wide figures (every team's bots by name, the installation's storage), so
both need ops.view_operations, whatever bot permissions one holds: anonymous goes to the
login page, staff without it get 403 (even with every bot permission), a non-staff user
with it is refused the admin, and with it the page works. No object belongs to a team, so
there is no "other team's object" case: a report is the whole fleet's.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pytest
from django.urls import reverse

from bots.access import CHAT, MANAGE_ALL, OPERATE
from bots.models import ChatMessage
from ops.console.reports import make_report, parse_month
from ops.models import Report
from tests.integration.authz.matrix import audit_rows
from tests.plugins.console import WEEK, at

pytestmark = pytest.mark.django_db
VIEW_OPS = "ops.view_operations"
EVERY_BOT_PERMISSION = ("bots.view_bot", OPERATE, CHAT, MANAGE_ALL)


@pytest.fixture
def report(own_bot) -> Report:
    ChatMessage.objects.filter(bot=own_bot).update(created_at=at(17))  # in the reported week
    return make_report("weekly", WEEK)[0]


@dataclass(frozen=True)
class Page:
    name: str
    url: Callable[[Report], str]
    works: Callable  # works(response, report)

    def __str__(self) -> str:
        return self.name


def _capacity(response, report) -> None:
    assert response.status_code == 200
    text = response.content.decode()
    assert "Web CPU" in text and "Database connections" in text and "Backup disk" in text


def _list(response, report) -> None:
    assert response.status_code == 200
    assert [r.pk for r in response.context["cl"].result_list] == [report.pk]


def _page(response, report) -> None:
    assert response.status_code == 200
    text = response.content.decode()
    assert "Period: 2026-11-16 to 2026-11-22" in text
    assert 'id="report-chart"' in text and "Messages per day, 2026-11-16" in text  # the chart's text alternative
    assert "<table>" in text and "blue-bot" in text  # the Markdown, rendered
    assert reverse("admin:ops_report_download", args=[report.pk]) in text


def _download(response, report) -> None:
    assert response.status_code == 200
    assert response["Content-Type"] == "text/markdown; charset=utf-8"
    assert response["Content-Disposition"] == 'attachment; filename="deia-weekly-report-2026-11-16.md"'
    assert response.content.decode() == report.body


PAGES = [
    Page("capacity", lambda r: reverse("ops-capacity"), _capacity),
    Page("report list", lambda r: reverse("admin:ops_report_changelist"), _list),
    Page("report page", lambda r: reverse("admin:ops_report_change", args=[r.pk]), _page),
    Page("report download", lambda r: reverse("admin:ops_report_download", args=[r.pk]), _download),
]


@pytest.mark.parametrize("page", PAGES, ids=str)
def test_anonymous_is_sent_to_the_login_page(page, admin_as, report):
    response = admin_as(None).get(page.url(report))
    assert response.status_code == 302 and response["Location"].startswith("/admin/login/?next=")


@pytest.mark.parametrize("page", PAGES, ids=str)
def test_staff_without_the_permission_is_refused_whatever_bot_permissions_they_hold(page, admin_as, make_user, report):
    response = admin_as(make_user(*EVERY_BOT_PERMISSION)).get(page.url(report))
    assert response.status_code == 403
    assert "blue-bot" not in response.content.decode()


@pytest.mark.parametrize("page", PAGES, ids=str)
def test_a_user_who_is_not_staff_is_refused_the_admin(page, admin_as, make_user, report):
    response = admin_as(make_user(VIEW_OPS, staff=False)).get(page.url(report))
    assert response.status_code == 302 and response["Location"].startswith("/admin/login/?next=")


@pytest.mark.parametrize("page", PAGES, ids=str)
def test_with_the_permission_it_works_and_changes_nothing(page, admin_as, make_user, report):
    user = make_user(VIEW_OPS)
    page.works(admin_as(user).get(page.url(report)), report)
    assert audit_rows() == []  # reading writes nothing
    assert Report.objects.get().body == report.body


def test_reports_are_read_only_even_for_a_superuser(admin_as, django_user_model, report):
    root = django_user_model.objects.create_superuser("root", password="x")
    client = admin_as(root)
    assert client.get(reverse("admin:ops_report_add")).status_code == 403
    assert client.post(reverse("admin:ops_report_change", args=[report.pk]), {"body": "forged"}).status_code == 200
    assert client.get(reverse("admin:ops_report_delete", args=[report.pk])).status_code == 403
    assert Report.objects.get().body == report.body


def test_a_missing_report_is_404(admin_as, make_user, report):
    client = admin_as(make_user(VIEW_OPS))
    assert client.get(reverse("admin:ops_report_change", args=[report.pk + 1])).status_code == 404
    assert client.get(reverse("admin:ops_report_download", args=[report.pk + 1])).status_code == 404
    assert client.get("/admin/ops/report/nope/change/").status_code in (302, 404)


def test_the_report_list_costs_the_same_queries_for_many_reports(
    admin_as, make_user, report, django_assert_max_num_queries
):
    client = admin_as(make_user(VIEW_OPS))
    for month in ("2026-09", "2026-10"):
        make_report("monthly", parse_month(month))
    with django_assert_max_num_queries(8):
        response = client.get(reverse("admin:ops_report_changelist"))
    assert len(response.context["cl"].result_list) == 3


def test_html_in_a_report_is_shown_not_run(admin_as, make_user, report):
    Report.objects.filter(pk=report.pk).update(body=report.body + "\n<script>alert(1)</script>\n")
    text = admin_as(make_user(VIEW_OPS)).get(reverse("admin:ops_report_change", args=[report.pk])).content.decode()
    assert "<script>alert(1)</script>" not in text and "&lt;script&gt;alert(1)&lt;/script&gt;" in text


def test_the_overview_the_operations_page_and_the_ops_index_link_to_capacity_and_reports(admin_as, make_user, settings):
    settings.DIAGNOSE_TIMEOUT = 1
    client = admin_as(make_user(VIEW_OPS))
    for url in (reverse("admin:ops_operations"), reverse("admin:app_list", args=["ops"]), reverse("overview")):
        text = client.get(url).content.decode()
        assert f'href="{reverse("ops-capacity")}"' in text, url
        assert f'href="{reverse("admin:ops_report_changelist")}"' in text, url
