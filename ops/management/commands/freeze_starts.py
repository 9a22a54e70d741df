from __future__ import annotations

from ops.maintenance.command import OpsCommand, cli_actor
from ops.remediation import freeze_starts


class Command(OpsCommand):
    help = "Refuse new bot starts from now on (like MAX_BOTS=0, no restart); running bots keep running."

    def handle(self, *args, **options) -> None:
        changed = freeze_starts(actor=cli_actor())
        self.stdout.write("bot starts frozen" if changed else "bot starts were already frozen")
