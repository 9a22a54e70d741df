from __future__ import annotations

from django.core.management.base import BaseCommand

from ops.maintenance.command import cli_actor
from ops.remediation import unfreeze_starts


class Command(BaseCommand):
    help = "Allow bot starts again after freeze_starts."

    def handle(self, *args, **options) -> None:
        changed = unfreeze_starts(actor=cli_actor())
        self.stdout.write("bot starts unfrozen" if changed else "bot starts were not frozen")
