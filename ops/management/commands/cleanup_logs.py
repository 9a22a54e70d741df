from __future__ import annotations

from ops.maintenance.command import JobCommand


class Command(JobCommand):
    help = "Delete rotated logs (*.log.*) in LOG_DIR older than LOG_RETENTION_DAYS."
    job = "cleanup_logs"
