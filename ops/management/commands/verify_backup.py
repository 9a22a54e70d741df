from __future__ import annotations

from pathlib import Path

from django.core.management.base import CommandError

from ops.maintenance.command import JobCommand


class Command(JobCommand):
    help = "Restore check: restore a backup (default: the newest) into a scratch database and compare row counts."
    job = "verify_backup"

    def add_arguments(self, parser) -> None:
        parser.add_argument("file", nargs="?", help="backup file (default: the newest in BACKUP_DIR)")

    def job_kwargs(self, options: dict) -> dict:
        # A mistyped path is bad input, refused before a run is recorded; a file that is
        # there but is no good backup is a failed check, recorded and audited.
        if options["file"] and not Path(options["file"]).is_file():
            raise CommandError(f"{options['file']} does not exist or is not a file")
        return {"path": options["file"]}
