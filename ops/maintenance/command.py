"""What every maintenance and remediation command shares: who acts, how a run is reported.

The job commands are made from the job registry: `manage.py maintenance <job>`, and
`manage.py <job>` through a one-line module per job in ops/management/commands/ (Django
finds a command only by its module).
"""

from __future__ import annotations

import getpass
import sys

from django.core.management.base import BaseCommand, CommandError, CommandParser

from ops import maintenance
from ops.maintenance import JOBS, Job
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

    job: Job

    def add_arguments(self, parser: CommandParser) -> None:
        for argument in self.job.arguments:
            argument.add_to(parser)

    def handle(self, *args, **options) -> None:
        self.run_job(self.job, options)

    def run_job(self, job: Job, options: dict) -> None:
        kwargs = {argument.dest: options[argument.dest] for argument in job.arguments}
        run = maintenance.run(job.name, actor=cli_actor(), **kwargs)
        line = f"{job.name} {run.status}: {run.summary}"
        if run.status == MaintenanceRun.Status.FAILED:
            raise CommandError(line)
        self.stdout.write(line)


class MaintenanceCommand(JobCommand):
    """`manage.py maintenance <job> [arguments]`: any registered job, as JobCommand runs one."""

    help = "Run one maintenance job now, recorded like a scheduled run (--help lists the jobs)."

    def add_arguments(self, parser: CommandParser) -> None:
        # Sub-parsers answer bad input in one line too (create_parser swaps the top one's class later).
        jobs = parser.add_subparsers(dest="job", metavar="job", title="jobs", parser_class=OneLineParser)
        for job in JOBS.values():
            sub = jobs.add_parser(job.name, help=job.description, description=job.description, allow_abbrev=False)
            for argument in job.arguments:
                argument.add_to(sub)

    def handle(self, *args, job: str | None, **options) -> None:
        if job is None:
            raise CommandError(f"name the job to run, one of: {', '.join(JOBS)}")
        self.run_job(JOBS[job], options)


def job_command(module: str) -> type[JobCommand]:
    """The Command of ops/management/commands/<job>.py: `manage.py <job>` for each registered job."""
    job = JOBS[module.rpartition(".")[2]]
    return type("Command", (JobCommand,), {"job": job, "help": job.description, "__module__": module})
