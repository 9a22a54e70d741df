"""Backups, their records, the SQLite database and the folders around them are owner-only,
whatever umask the process was started with."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from ops import maintenance

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def permissive_umask():
    previous = os.umask(0o022)
    yield
    os.umask(previous)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_backup_and_its_record_are_owner_only_under_a_permissive_umask(permissive_umask, backup_dir):
    run = maintenance.run("backup", actor="test")
    assert run.status == "ok", run.summary
    dump = Path(run.details["path"])
    assert mode(backup_dir) == 0o700
    assert mode(dump) == 0o600
    assert mode(dump.with_name(dump.name + ".json")) == 0o600


def test_the_sqlite_install_writes_owner_only_files_from_a_permissive_shell(permissive_umask, sqlite_install, tmp_path):
    sqlite_install.ok("setup", "--no-demo")
    sqlite_install.ok("backup")
    var = tmp_path / "var"
    assert mode(var) == mode(var / "broker") == mode(var / "broker" / "queue") == 0o700
    assert mode(sqlite_install.backups) == 0o700
    for path in [sqlite_install.db, *sqlite_install.backups.iterdir()]:
        assert mode(path) == 0o600, path
    for suffix in ("-wal", "-shm"):
        sidecar = sqlite_install.db.with_name(sqlite_install.db.name + suffix)
        assert not sidecar.exists() or mode(sidecar) == 0o600
