from __future__ import annotations

from django.core.management.base import CommandError

from ops.maintenance.command import OpsCommand, cli_actor
from ops.remediation import RemediationError, terminate_idle_connections


class Command(OpsCommand):
    help = "Terminate this application's database sessions idle for longer than a threshold (runbook 3)."

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--older-than-minutes", type=float, default=None, help="default IDLE_CONNECTION_MINUTES (30)"
        )
        parser.add_argument("--dry-run", action="store_true", help="only list them")

    def handle(self, *args, older_than_minutes: float | None, dry_run: bool, **options) -> None:
        try:
            result = terminate_idle_connections(older_than_minutes, dry_run=dry_run, actor=cli_actor())
        except RemediationError as exc:
            raise CommandError(str(exc)) from None
        for s in result["sessions"]:
            self.stdout.write(f"  pid {s['pid']} {s['user']} {s['application'] or '-'} idle {s['idle_seconds']:.0f} s")
        verb = "would terminate" if dry_run else "terminated"
        count = result["found"] if dry_run else len(result["terminated"])
        spared = f" ({len(result['spared'])} woke up meanwhile and were spared)" if result["spared"] else ""
        self.stdout.write(f"{verb} {count} idle sessions older than {result['older_than_minutes']:g} min{spared}")
