"""What every maintenance and remediation command shares: who acts, how a run is reported."""

from __future__ import annotations

import getpass
import sys

from django.core.management.base import BaseCommand, CommandError, CommandParser

from ops import maintenance
from ops.models import MaintenanceRun


def cli_actor() -> str:
    """The audit actor of a command: the operating-system user who typed it."""
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return "cli"


class OneLineParser(CommandParser):
    """Bad arguments: one line on stderr and exit 2, not argparse's usage block."""

    def error(self, message: str):
        if not self.called_from_command_line:
            raise CommandError(f"Error: {message}")
        sys.stderr.write(f"{self.prog}: {message} (see --help)\n")
        sys.exit(2)


class OpsCommand(BaseCommand):
    """A maintenance or remediation command: bad input is one readable line."""

    def create_parser(self, prog_name: str, subcommand: str, **kwargs) -> CommandParser:
        parser = super().create_parser(prog_name, subcommand, **kwargs)
        parser.__class__ = OneLineParser  # Django builds a CommandParser; only error() differs
        # No abbreviations: on a command that deletes or kills, a misspelt option is refused,
        # never taken for another one (--y for --yes, --force for --force-color).
        parser.allow_abbrev = False
        return parser


class JobCommand(OpsCommand):
    """`manage.py <job>`: run the job once, recorded like a scheduled run.

    Prints the one-line summary; a failed run exits 1 with the summary on stderr.
    """

    job = ""

    def job_kwargs(self, options: dict) -> dict:
        return {}

    def handle(self, *args, **options) -> None:
        run = maintenance.run(self.job, actor=cli_actor(), **self.job_kwargs(options))
        line = f"{self.job} {run.status}: {run.summary}"
        if run.status == MaintenanceRun.Status.FAILED:
            raise CommandError(line)
        self.stdout.write(line)
