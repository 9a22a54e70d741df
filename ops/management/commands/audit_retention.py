from __future__ import annotations

from ops.maintenance.command import JobCommand


class Command(JobCommand):
    help = "Delete audit rows older than AUDIT_RETENTION_DAYS (400), in batches; the deletion is audited once."
    job = "audit_retention"
