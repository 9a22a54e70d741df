from __future__ import annotations

from ops.maintenance.command import OpsCommand, cli_actor
from ops.schedules import install


class Command(OpsCommand):
    help = "Install the default beat schedules (reconcile, maintenance jobs). Safe to re-run."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--reset", action="store_true", help="put edited schedules back to the defaults")

    def handle(self, *args, reset: bool, **options) -> None:
        result = install(reset=reset, actor=cli_actor())
        self.stdout.write(
            f"schedules: {result['created']} created, {result['updated']} updated, {result['total']} defined"
        )
