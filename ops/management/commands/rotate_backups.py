from __future__ import annotations

from ops.maintenance.command import JobCommand


class Command(JobCommand):
    help = "Delete backups older than BACKUP_RETENTION_DAYS (never the newest good one, never other files)."
    job = "rotate_backups"
