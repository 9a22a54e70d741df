from __future__ import annotations

from ops.maintenance.command import JobCommand


class Command(JobCommand):
    help = "VACUUM (ANALYZE) the database."
    job = "vacuum"
