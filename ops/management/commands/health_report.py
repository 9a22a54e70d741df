from __future__ import annotations

from ops.maintenance.command import JobCommand


class Command(JobCommand):
    help = "Run diagnose's checks and record them as the daily health report."
    job = "health_report"
