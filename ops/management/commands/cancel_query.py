from __future__ import annotations

import sys

from django.core.management.base import CommandError

from ops.maintenance.command import OpsCommand, cli_actor
from ops.remediation import RemediationError, cancel_query, check_threshold, show_query


class Command(OpsCommand):
    help = "Show the query a database session runs; with --yes cancel it (pg_cancel_backend) (runbook 3)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("pid", type=int)
        parser.add_argument("--yes", action="store_true", help="cancel it")
        parser.add_argument("--min-seconds", type=float, default=None, help="default SLOW_QUERY_SECONDS (10)")

    def handle(self, *args, pid: int, yes: bool, min_seconds: float | None, **options) -> None:
        try:
            if min_seconds is not None:  # refused before anything is shown or asked
                check_threshold(min_seconds, "--min-seconds")
            query = show_query(pid)
            self.stdout.write(
                f"pid {query['pid']} {query['user']} {query['state']} for {query['seconds']:g} s: {query['query']}"
            )
            if not yes and not _confirmed():
                self.stdout.write("not cancelled: add --yes to cancel it")
                return
            result = cancel_query(pid, min_seconds=min_seconds, actor=cli_actor())
        except RemediationError as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(f"cancel of pid {pid} {'sent' if result['cancelled'] else 'failed (already finished?)'}")


def _confirmed() -> bool:
    """Ask at a terminal; a script without --yes never cancels anything."""
    if not sys.stdin.isatty():
        return False
    return input("cancel it? [y/N] ").strip().lower() in ("y", "yes")
