from __future__ import annotations

from ops.maintenance.command import JobCommand


class Command(JobCommand):
    help = "Restore check: restore a backup (default: the newest) into a scratch database and compare row counts."
    job = "verify_backup"

    def add_arguments(self, parser) -> None:
        parser.add_argument("file", nargs="?", help="backup file (default: the newest in BACKUP_DIR)")

    def job_kwargs(self, options: dict) -> dict:
        return {"path": options["file"]}
