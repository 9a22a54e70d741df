"""The host: free disk (the root and the backups' file system) and available memory."""

from __future__ import annotations

from pathlib import Path

from django.conf import settings

from deia.probes.services import probe_disk
from ops.diagnose.grading import Check, Level, graded

DISK_STEP = "manage.py rotate_backups; manage.py cleanup_logs; du -sh /var/* to find the rest"


def _disk(name: str, path: Path) -> Check:
    result = probe_disk(path)
    if not result.ok:
        return Check(name, Level.WARN, f"{path}: cannot read its usage: {result.detail}", "", "df -h")
    free, total = result.facts["free_bytes"], result.facts["total_bytes"]
    percent = 100.0 * free / total
    return graded(
        name,
        percent,
        settings.DIAGNOSE_DISK_WARN_PERCENT,
        settings.DIAGNOSE_DISK_CRIT_PERCENT,
        f"{path}: {percent:.0f} % free ({free / 1073741824:.1f} GiB)",
        DISK_STEP,
        below=True,
    )


def check_disk_root() -> Check:
    return _disk("disk_root", Path("/"))


def check_disk_backups() -> Check:
    return _disk("disk_backups", settings.BACKUP_DIR)


def memory_kib() -> tuple[int, int] | None:
    """(total, available) KiB of this host's memory from /proc/meminfo; None when unreadable."""
    try:
        fields = dict(line.split(":", 1) for line in Path("/proc/meminfo").read_text().splitlines() if ":" in line)
        return int(fields["MemTotal"].split()[0]), int(fields["MemAvailable"].split()[0])
    except (OSError, KeyError, ValueError):
        return None


def check_memory() -> Check:
    memory = memory_kib()
    if memory is None:
        return Check("memory", Level.WARN, "cannot read /proc/meminfo", "", "free -h")
    total, available = memory
    percent = 100.0 * available / total
    return graded(
        "memory",
        percent,
        settings.DIAGNOSE_MEMORY_WARN_PERCENT,
        settings.DIAGNOSE_MEMORY_CRIT_PERCENT,
        f"{percent:.0f} % available ({available / 1048576:.1f} of {total / 1048576:.1f} GiB)",
        "runbooks/high-memory-usage.md: ps aux --sort=-%mem | head; manage.py stop_least_used --keep N",
        below=True,
    )
