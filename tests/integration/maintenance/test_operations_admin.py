"""The admin's Operations page and maintenance-run pages."""

from __future__ import annotations

import json

import psycopg
import pytest
from django.contrib.auth.models import Permission
from django.db import connection
from django.urls import reverse

from deia.flags import starts_frozen
from deia.models import AuditLog
from ops import maintenance
from ops.models import MaintenanceRun
from tests.support.perms import grant
from tests.support.procs import wait_for

pytestmark = pytest.mark.django_db(transaction=True)
PAGE = "admin:ops_operations"


def remedy(name: str) -> str:
    return reverse("admin:ops_operations_remedy", args=[name])


@pytest.fixture(autouse=True)
def quick_diagnose(settings):
    """Every page view runs diagnose; nothing here waits on a worker ping for long."""
    settings.DIAGNOSE_TIMEOUT = 1


@pytest.fixture
def staff(client, django_user_model):
    """A staff member who may look at the Operations page but not act."""
    user = django_user_model.objects.create_user("viewer", password="x", is_staff=True)
    grant(user, "ops.view_operations")
    client.force_login(user)
    return client


def test_the_operations_page_shows_the_diagnose_lines_and_the_buttons(admin_client):
    page = admin_client.get(reverse(PAGE))
    assert page.status_code == 200
    text = page.content.decode()
    for name in ("database", "last_backup", "disk_root", "workers"):
        assert f"<td>{name}</td>" in text
    assert "Run backup now" in text and "Freeze new bot starts" in text
    assert "csrfmiddlewaretoken" in text


def test_a_staff_member_without_the_permission_can_look_but_not_act(staff):
    page = staff.get(reverse(PAGE))
    assert page.status_code == 200 and "Run backup now" not in page.content.decode()
    assert staff.post(remedy("freeze")).status_code == 403
    assert staff.post(reverse("admin:ops_operations_run", args=["backup"])).status_code == 403
    assert not starts_frozen() and not AuditLog.objects.filter(action__startswith="ops.").exists()


def test_the_permission_lets_a_staff_member_act(staff, django_user_model):
    user = django_user_model.objects.get(username="viewer")
    user.user_permissions.add(Permission.objects.get(codename="operate"))
    response = staff.post(remedy("freeze"), REMOTE_ADDR="10.1.2.3")
    assert response.status_code == 302 and starts_frozen()
    row = AuditLog.objects.get(action="ops.freeze_starts")
    assert (row.actor, row.user, row.ip) == ("viewer", user, "10.1.2.3")


def test_freeze_and_unfreeze_from_the_page_are_audited_with_the_user(admin_client, admin_user):
    admin_client.post(remedy("freeze"))
    assert starts_frozen()
    admin_client.post(remedy("unfreeze"))
    assert not starts_frozen()
    rows = AuditLog.objects.filter(action__in=["ops.freeze_starts", "ops.unfreeze_starts"])
    assert {(r.action, r.user_id, r.ip) for r in rows} == {
        ("ops.freeze_starts", admin_user.pk, "127.0.0.1"),
        ("ops.unfreeze_starts", admin_user.pk, "127.0.0.1"),
    }


def test_terminating_idle_connections_asks_first_then_acts(admin_client, pg_session):
    idle = pg_session(name="deia-test-idle")
    pid = idle.execute("SELECT pg_backend_pid()").fetchone()[0]
    from ops.remediation import idle_connections

    wait_for(lambda: pid in {s["pid"] for s in idle_connections(0.3)}, what="idle session")
    preview = admin_client.post(remedy("terminate_idle_connections"), {"older_than_minutes": "0.005"})
    assert preview.status_code == 200 and f"pid {pid}" in preview.content.decode()
    assert idle.execute("SELECT 1").fetchone() == (1,)  # asking changed nothing
    wait_for(lambda: pid in {s["pid"] for s in idle_connections(0.3)}, what="idle session")
    done = admin_client.post(
        remedy("terminate_idle_connections"), {"older_than_minutes": "0.005", "confirm": "yes"}, follow=True
    )
    # This process's own idle pool connections went too: start a fresh pool.
    connection.close()
    connection.close_pool()
    assert "Terminated" in done.content.decode()
    with pytest.raises(psycopg.OperationalError):
        idle.execute("SELECT 1")
    row = AuditLog.objects.get(action="ops.terminate_idle_connections")
    assert pid in row.details["terminated"] and row.actor == "admin"


def test_bad_input_is_a_message_and_changes_nothing(admin_client):
    response = admin_client.post(remedy("stop_least_used"), {"keep": "lots"}, follow=True)
    assert "keep: expected a number" in response.content.decode().lower()
    response = admin_client.post(remedy("cancel_query"), {"pid": "999999", "confirm": "yes"}, follow=True)
    assert "no session with pid 999999" in response.content.decode().lower()
    response = admin_client.post(reverse("admin:ops_operations_run", args=["format_disk"]), follow=True)
    assert "Unknown maintenance job" in response.content.decode()
    assert not AuditLog.objects.filter(action__startswith="ops.").exists()


def test_clear_cache_needs_the_confirmation_step(admin_client):
    preview = admin_client.post(remedy("clear_cache"))
    assert preview.status_code == 200 and "Clear the application cache?" in preview.content.decode()
    assert not AuditLog.objects.filter(action="ops.clear_cache").exists()
    admin_client.post(remedy("clear_cache"), {"confirm": "yes"})
    assert AuditLog.objects.get(action="ops.clear_cache").actor == "admin"


def test_run_now_queues_the_job_on_the_maintenance_queue(admin_client, redis_client):
    response = admin_client.post(reverse("admin:ops_operations_run", args=["vacuum"]), follow=True)
    assert "vacuum queued" in response.content.decode().lower()
    assert redis_client.llen("maintenance") == 1
    message = json.loads(redis_client.lindex("maintenance", 0))
    assert message["headers"]["task"] == "ops.tasks.vacuum"
    row = AuditLog.objects.get(action="maintenance.enqueue")
    assert row.target == "vacuum" and row.actor == "admin"


def test_maintenance_runs_are_listed_and_their_reports_readable(admin_client):
    run = maintenance.run("db_report", actor="test")
    listing = admin_client.get(reverse("admin:ops_maintenancerun_changelist"), {"job": "db_report"})
    assert listing.status_code == 200 and run.summary in listing.content.decode()
    detail = admin_client.get(reverse("admin:ops_maintenancerun_change", args=[run.pk]))
    text = detail.content.decode()
    assert "<h3>tables</h3>" in text and "<td>chat_messages</td>" in text
    assert "<h3>indexes</h3>" in text and "chat_bot_created_idx" in text
    assert 'name="_save"' not in text
    assert (
        admin_client.post(reverse("admin:ops_maintenancerun_delete", args=[run.pk]), {"post": "yes"}).status_code == 403
    )
    assert MaintenanceRun.objects.filter(pk=run.pk).exists()
