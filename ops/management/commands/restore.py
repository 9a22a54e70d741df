from __future__ import annotations

from django.core.management.base import CommandError
from django.db import transaction

from deia.audit import audit
from deia.audit_actions import Action
from ops.maintenance.backup import restore
from ops.maintenance.command import OpsCommand, cli_actor
from ops.maintenance.runs import JobFailed


class Command(OpsCommand):
    help = "Replace the database's content with a backup. Stop web and workers first. Needs --yes."

    def add_arguments(self, parser) -> None:
        parser.add_argument("file", help="backup file (db_<timestamp>.dump with its .json record)")
        parser.add_argument("--yes", action="store_true", help="really replace the current data")

    def handle(self, *args, file: str, yes: bool, **options) -> None:
        if not yes:
            raise CommandError(f"restore replaces every row of the database with {file}; add --yes to do it")
        try:
            result = restore(file)
        except JobFailed as exc:
            raise CommandError(f"restore refused: {exc.summary}") from None
        # Written after the restore, so the row lands in the restored database.
        with transaction.atomic():
            audit(Action.OPS_RESTORE, actor=cli_actor(), target=result["file"], details=result)
        counts = ", ".join(f"{k}={v}" for k, v in result["counts"].items())
        self.stdout.write(f"restore ok: {result['file']} ({counts})")
