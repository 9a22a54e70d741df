from __future__ import annotations

from ops.maintenance.command import JobCommand


class Command(JobCommand):
    help = "Take a verified-checksum backup of the database into BACKUP_DIR (pg_dump custom format)."
    job = "backup"
