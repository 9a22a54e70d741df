"""What every maintenance and remediation command shares: who acts, how a run is reported."""

from __future__ import annotations

import getpass

from django.core.management.base import BaseCommand, CommandError

from ops import maintenance
from ops.models import MaintenanceRun


def cli_actor() -> str:
    """The audit actor of a command: the operating-system user who typed it."""
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return "cli"


class JobCommand(BaseCommand):
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
