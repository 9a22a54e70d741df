"""Backup rotation and rotated-log cleanup delete exactly what they should."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from deia.models import AuditLog
from ops import maintenance
from ops.models import MaintenanceRun

pytestmark = pytest.mark.django_db(transaction=True)
DAY = 86400


def make(folder: Path, name: str, age_days: float, *, record: bool = False, content: bytes = b"x" * 10) -> Path:
    path = folder / name
    path.write_bytes(content)
    if record:
        (folder / f"{name}.json").write_text(json.dumps({"size": len(content), "sha256": "0" * 64, "counts": {}}))
    stamp = time.time() - age_days * DAY
    for p in (path, folder / f"{name}.json"):
        if p.exists():
            os.utime(p, (stamp, stamp))
    return path


def names(folder: Path) -> set[str]:
    return {p.name for p in folder.iterdir()}


def test_rotation_deletes_exactly_the_old_backups_and_nothing_else(backup_dir):
    backup_dir.mkdir()
    make(backup_dir, "db_20240101T020000Z.dump", 60, record=True)
    make(backup_dir, "db_20240102T020000Z.dump", 45, record=True)
    make(backup_dir, "db_20240103T020000Z-1.sqlite3", 40)  # no record: still a backup name
    make(backup_dir, "db_20240301T020000Z.dump", 5, record=True)
    make(backup_dir, "db_20240302T020000Z.dump", 1, record=True)
    # Old, but not backups by name: rotation never touches them.
    make(backup_dir, "notes.txt", 90)
    make(backup_dir, "db_manual_copy.dump", 90)
    make(backup_dir, "db_20240101T020000Z.dump.bak", 90)
    make(backup_dir, ".db_20240101T020000Z.dump.partial", 90)
    make(backup_dir, "db_20230101T020000Z.dump.json.orig", 90)
    # An old record whose backup was deleted by hand goes too.
    (backup_dir / "db_20231201T020000Z.dump.json").write_text("{}")
    os.utime(backup_dir / "db_20231201T020000Z.dump.json", (time.time() - 50 * DAY,) * 2)

    run = maintenance.run("rotate_backups", actor="test")

    assert run.status == "ok", run.summary
    assert names(backup_dir) == {
        "db_20240301T020000Z.dump",
        "db_20240301T020000Z.dump.json",
        "db_20240302T020000Z.dump",
        "db_20240302T020000Z.dump.json",
        "notes.txt",
        "db_manual_copy.dump",
        "db_20240101T020000Z.dump.bak",
        ".db_20240101T020000Z.dump.partial",
        "db_20230101T020000Z.dump.json.orig",
    }
    assert set(run.details["deleted"]) == {
        "db_20240101T020000Z.dump",
        "db_20240102T020000Z.dump",
        "db_20240103T020000Z-1.sqlite3",
        "db_20231201T020000Z.dump.json",
    }
    assert run.details["newest_good"] == "db_20240302T020000Z.dump"


def test_rotation_keeps_the_newest_good_backup_however_old(backup_dir):
    backup_dir.mkdir()
    make(backup_dir, "db_20240101T020000Z.dump", 90, record=True)
    make(backup_dir, "db_20240102T020000Z.dump", 80, record=True)
    # Newer, but its record says another size: not a good backup.
    bad = make(backup_dir, "db_20240103T020000Z.dump", 70, record=True)
    bad.write_bytes(b"truncated")
    os.utime(bad, (time.time() - 70 * DAY,) * 2)

    run = maintenance.run("rotate_backups", actor="test")

    assert names(backup_dir) == {"db_20240102T020000Z.dump", "db_20240102T020000Z.dump.json"}
    assert run.details["newest_good"] == "db_20240102T020000Z.dump"


def test_rotation_warns_when_no_good_backup_is_left(backup_dir):
    backup_dir.mkdir()
    make(backup_dir, "db_20240101T020000Z.dump", 1)
    run = maintenance.run("rotate_backups", actor="test")
    assert run.status == MaintenanceRun.Status.WARNING
    assert "no good backup" in run.summary
    assert names(backup_dir) == {"db_20240101T020000Z.dump"}


def test_log_cleanup_deletes_old_rotated_logs_only(settings, tmp_path):
    logs = settings.LOG_DIR = tmp_path / "log"
    (logs / "bots").mkdir(parents=True)
    make(logs, "web.log", 90)  # the live log, however old its mtime
    make(logs, "web.log.1", 40)
    make(logs, "web.log.2.gz", 31)
    make(logs, "web.log.3", 10)
    make(logs / "bots", "support.log.1", 45)
    make(logs, "readme.txt", 90)

    run = maintenance.run("cleanup_logs", actor="test")

    assert run.status == "ok"
    assert sorted(run.details["deleted"]) == ["bots/support.log.1", "web.log.1", "web.log.2.gz"]
    assert names(logs) == {"bots", "web.log", "web.log.3", "readme.txt"}


def test_a_rotation_that_deletes_is_audited_once_and_one_that_deletes_nothing_is_not(backup_dir):
    backup_dir.mkdir()
    make(backup_dir, "db_20240101T020000Z.dump", 60, record=True)
    make(backup_dir, "db_20240302T020000Z.dump", 1, record=True)
    maintenance.run("rotate_backups", actor="test")
    rows = list(AuditLog.objects.filter(action__startswith="maintenance.rotate_backups"))
    assert [(r.action, r.actor) for r in rows] == [("maintenance.rotate_backups", "test")]
    assert rows[0].details["summary"].startswith("deleted 1 backups")
    maintenance.run("rotate_backups", actor="test")
    assert AuditLog.objects.filter(action__startswith="maintenance.rotate_backups").count() == 1
