"""Housekeeping of files: backup rotation and rotated-log cleanup."""

from __future__ import annotations

import json
import time
from pathlib import Path

from django.conf import settings

from ops.maintenance.backup import BACKUP_NAME, SIDECAR_SUFFIX, backup_files, sidecar_path
from ops.maintenance.runs import Outcome

DAY = 86400


def _newest_good(files: list[Path]) -> Path | None:
    """The newest backup whose record exists and whose size matches it."""
    for path in reversed(files):
        try:
            meta = json.loads(sidecar_path(path).read_text())
            if meta.get("size") == path.stat().st_size:
                return path
        except (OSError, ValueError, AttributeError):
            continue
    return None


def rotate_backups(days: int | None = None) -> Outcome:
    """Delete backups older than the retention; never the newest good one, never other files."""
    days = settings.BACKUP_RETENTION_DAYS if days is None else days
    folder = settings.BACKUP_DIR
    cutoff = time.time() - days * DAY
    files = backup_files(folder)
    keep = _newest_good(files)
    deleted, freed = [], 0
    for path in files:
        if path == keep or path.stat().st_mtime >= cutoff:
            continue
        for victim in (path, sidecar_path(path)):
            if victim.exists():
                freed += victim.stat().st_size
                victim.unlink()
        deleted.append(path.name)
    # Records whose backup is gone (deleted by hand) go once they are old enough.
    if folder.is_dir():
        for record in folder.iterdir():
            name = record.name
            if not name.endswith(SIDECAR_SUFFIX) or not BACKUP_NAME.match(name[: -len(SIDECAR_SUFFIX)]):
                continue
            if not record.with_name(name[: -len(SIDECAR_SUFFIX)]).exists() and record.stat().st_mtime < cutoff:
                record.unlink()
                deleted.append(name)
    kept = [p.name for p in backup_files(folder)]
    details = {"retention_days": days, "deleted": deleted, "kept": kept, "freed_bytes": freed, "newest_good": None}
    if keep is None:
        return Outcome(
            f"deleted {len(deleted)}, kept {len(kept)}; no good backup in {folder}", details, "warning", bool(deleted)
        )
    details["newest_good"] = keep.name
    return Outcome(
        f"deleted {len(deleted)} backups older than {days} days, kept {len(kept)}", details, changed=bool(deleted)
    )


def cleanup_logs(days: int | None = None) -> Outcome:
    """Delete rotated logs (*.log.*) older than the retention; the live *.log stays."""
    days = settings.LOG_RETENTION_DAYS if days is None else days
    folder = settings.LOG_DIR
    cutoff = time.time() - days * DAY
    deleted, freed = [], 0
    if folder.is_dir():
        for path in sorted(folder.rglob("*.log.*")):
            if path.is_symlink() or not path.is_file():
                continue
            stat = path.stat()
            if stat.st_mtime < cutoff:
                path.unlink()
                deleted.append(str(path.relative_to(folder)))
                freed += stat.st_size
    details = {"folder": str(folder), "retention_days": days, "deleted": deleted, "freed_bytes": freed}
    return Outcome(
        f"deleted {len(deleted)} rotated logs older than {days} days from {folder}", details, changed=bool(deleted)
    )
