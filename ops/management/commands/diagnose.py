from __future__ import annotations

import json
import sys

from ops.diagnose import overall, run_diagnose, summary
from ops.maintenance.command import OpsCommand


class Command(OpsCommand):
    help = "Run the runbooks' checks: one line each, OK/WARN/CRIT. Exit 0 all OK, 1 a warning, 2 a critical."
    # The checks must run when the database is down; Django's own checks would stop first.
    requires_system_checks: list = []

    def add_arguments(self, parser) -> None:
        parser.add_argument("--json", action="store_true", help="machine-readable output")

    def handle(self, *args, **options) -> None:
        checks = run_diagnose()
        level = overall(checks)
        if options["json"]:
            self.stdout.write(json.dumps({"status": level.name, "checks": [c.as_dict() for c in checks]}, indent=2))
        else:
            for check in checks:
                self.stdout.write(check.line())
            self.stdout.write(summary(checks))
        self.stdout.flush()
        sys.exit(int(level))
