from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from ops.maintenance.command import cli_actor
from ops.remediation import RemediationError, stop_least_used


class Command(BaseCommand):
    help = "Stop the least-used running bots (fewest messages in the last hour) until --keep remain (runbook 2)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--keep", type=int, required=True, help="how many running bots to keep")

    def handle(self, *args, keep: int, **options) -> None:
        try:
            stopped = stop_least_used(keep, actor=cli_actor())
        except RemediationError as exc:
            raise CommandError(str(exc)) from None
        names = ", ".join(bot.slug for bot in stopped) or "none"
        self.stdout.write(f"stopping {len(stopped)} bots to keep {keep}: {names}")
