from __future__ import annotations

from django.core.management.base import CommandError

from ops.maintenance.command import OpsCommand, cli_actor
from ops.remediation import clear_cache


class Command(OpsCommand):
    help = "Delete the application's cache keys (not the Celery queues). Needs --yes."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--yes", action="store_true", help="really clear it")

    def handle(self, *args, yes: bool, **options) -> None:
        if not yes:
            raise CommandError("clearing the cache slows every page until it refills; add --yes to do it")
        removed = clear_cache(actor=cli_actor())
        self.stdout.write(f"cache cleared: {removed if removed >= 0 else 'all'} keys removed")
