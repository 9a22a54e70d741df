"""Each job is declared once (ops.maintenance.registry): its command and its Operations button come from there."""

from __future__ import annotations

import io
import subprocess
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.urls import reverse
from django.utils import timezone
from django.utils.html import escape

from deia.models import AuditLog
from ops.maintenance import JOBS
from ops.models import MaintenanceRun
from tests.plugins.maintenance import metric
from tests.support.procs import PYTHON, ROOT

pytestmark = pytest.mark.django_db(transaction=True)


def test_manage_py_maintenance_runs_a_registered_job_and_records_the_run(child_env):
    old = timezone.now() - timedelta(days=401)
    for i in range(2):
        AuditLog.objects.create(actor="admin", action="bot.start", target=f"old {i}", created_at=old)
    done = subprocess.run(
        [PYTHON, "manage.py", "maintenance", "audit_retention"],
        cwd=ROOT,
        env=child_env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert (done.returncode, done.stderr) == (0, "")
    assert done.stdout.splitlines() == ["audit_retention ok: deleted 2 audit rows older than 400 days"]
    run = MaintenanceRun.objects.get()
    assert (run.job, run.status, run.actor[:4]) == ("audit_retention", "ok", "cli:")
    assert metric("deia_maintenance_runs_total", task="audit_retention", result="ok") == 1
    [row] = AuditLog.objects.all()
    assert (row.action, row.details["deleted"], row.details["run"]) == ("maintenance.audit_retention", 2, run.pk)


def test_maintenance_and_the_jobs_own_command_run_the_same_job():
    out = io.StringIO()
    call_command("maintenance", "db_report", stdout=out)
    call_command("db_report", stdout=out)
    runs = list(MaintenanceRun.objects.order_by("id").values_list("job", "status"))
    assert runs == [("db_report", "ok"), ("db_report", "ok")]
    lines = out.getvalue().splitlines()
    assert len(lines) == 2 and all(line.startswith("db_report ok: ") for line in lines)


def test_the_operations_page_has_a_button_for_every_registered_job(admin_client, settings):
    settings.DIAGNOSE_TIMEOUT = 1  # the page runs diagnose; no worker answers here
    text = admin_client.get(reverse("admin:ops_operations")).content.decode()
    for name, job in JOBS.items():
        assert f'<form method="post" action="{reverse("admin:ops_operations_run", args=[name])}">' in text
        assert f'value="Run {name} now" title="{escape(job.description)}"' in text
