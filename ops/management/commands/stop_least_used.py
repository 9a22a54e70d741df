from __future__ import annotations

from django.core.management.base import CommandError

from ops.maintenance.command import OpsCommand, cli_actor
from ops.remediation import RemediationError, stop_least_used


class Command(OpsCommand):
    help = "Stop the least-used running bots (fewest messages in the last hour) until --keep remain (runbook 2)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--keep", type=int, required=True, help="how many running bots to keep")

    def handle(self, *args, keep: int, **options) -> None:
        try:
            stopped = stop_least_used(keep, actor=cli_actor())
        except RemediationError as exc:
            raise CommandError(str(exc)) from None
        except Exception as exc:  # noqa: BLE001 - the bots stopped so far are audited; one line, no traceback
            raise CommandError(
                f"stop_least_used failed part-way ({type(exc).__name__}: {exc}); see the audit log"
            ) from None
        names = ", ".join(bot.slug for bot in stopped) or "none"
        skipped = f"; skipped {', '.join(stopped.skipped)} (deleted meanwhile)" if stopped.skipped else ""
        self.stdout.write(f"stopping {len(stopped)} bots to keep {keep}: {names}{skipped}")
