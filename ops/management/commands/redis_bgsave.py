from __future__ import annotations

from ops.maintenance.command import JobCommand


class Command(JobCommand):
    help = "BGSAVE Redis where it persists; reported as skipped where it does not."
    job = "redis_bgsave"
