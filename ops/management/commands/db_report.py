from __future__ import annotations

from ops.maintenance.command import JobCommand


class Command(JobCommand):
    help = "Record table sizes and index usage (readable in the admin's maintenance runs)."
    job = "db_report"
