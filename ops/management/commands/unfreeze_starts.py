from __future__ import annotations

from ops.maintenance.command import OpsCommand, cli_actor
from ops.remediation import unfreeze_starts


class Command(OpsCommand):
    help = "Allow bot starts again after freeze_starts."

    def handle(self, *args, **options) -> None:
        changed = unfreeze_starts(actor=cli_actor())
        self.stdout.write("bot starts unfrozen" if changed else "bot starts were not frozen")
