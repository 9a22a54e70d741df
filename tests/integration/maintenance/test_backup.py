"""Backups, the restore check and restore, against the real PostgreSQL."""

from __future__ import annotations

import json
import subprocess
import threading
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection, connections

from bots.models import Backend, Bot, ChatMessage, Role
from deia.audit import audit
from deia.models import AuditLog
from ops import maintenance
from ops.maintenance.backup import backup_files, sha256_of, sidecar_path
from ops.metrics import BACKUP_LAST_SUCCESS
from ops.models import MaintenanceRun
from tests.plugins.maintenance import fill, metric
from tests.support.procs import PYTHON, ROOT, error_lines, wait_for

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def data():
    bot = Bot.objects.create(name="Support", slug="support", backend=Backend.ECHO, model_name="echo")
    Bot.objects.create(name="Sales", slug="sales", backend=Backend.ECHO, model_name="echo")
    for i in range(30):
        ChatMessage.objects.create(bot=bot, role=Role.USER, content=f"hello {i}")
    audit("bot.create", actor="test", target="support")
    return bot


def good_backup() -> MaintenanceRun:
    run = maintenance.run("backup", actor="test")
    assert run.status == "ok", run.summary
    return run


def test_a_backup_passes_its_restore_check(backup_dir, data):
    run = good_backup()
    run.refresh_from_db()
    dump = Path(run.details["path"])
    assert dump.parent == backup_dir and dump.name.startswith("db_") and dump.suffix == ".dump"
    assert run.details["counts"] == {"bots": 2, "chat_messages": 30, "audit_logs": 1}
    assert run.details["size"] == dump.stat().st_size > 0
    assert len(run.details["sha256"]) == 64
    assert json.loads(sidecar_path(dump).read_text())["sha256"] == run.details["sha256"]
    assert [p.name for p in backup_dir.iterdir() if p.name.startswith(".")] == []  # no temporary left
    assert metric("deia_backup_size_bytes") == run.details["size"]
    assert metric("deia_backup_last_success_timestamp_seconds") > 0
    assert metric("deia_maintenance_runs_total", task="backup", result="ok") == 1
    assert metric("deia_maintenance_last_success_timestamp_seconds", task="backup") == pytest.approx(
        run.finished_at.timestamp()
    )

    check = maintenance.run("verify_backup", actor="test")
    check.refresh_from_db()
    assert check.status == "ok", check.summary
    assert check.details["found"] == check.details["expected"] == run.details["counts"]
    assert metric("deia_maintenance_runs_total", task="verify_backup", result="ok") == 1
    with connection.cursor() as cursor:  # the scratch database is gone
        cursor.execute("SELECT count(*) FROM pg_database WHERE datname LIKE 'deia_restorecheck_%%'")
        assert cursor.fetchone()[0] == 0


def test_messages_written_during_the_backup_do_not_fail_the_restore_check(backup_dir, data):
    stop, written = threading.Event(), []

    def write_messages() -> None:
        try:
            while not stop.is_set():
                written.append(ChatMessage.objects.create(bot=data, role=Role.ASSISTANT, content="during").pk)
        finally:
            connections["default"].close()

    writer = threading.Thread(target=write_messages)
    writer.start()
    try:
        # The writer is going before the backup starts and until after it ends.
        wait_for(lambda: len(written) > 20, what="messages being written")
        run = good_backup()
        after_backup = len(written)
    finally:
        stop.set()
        writer.join(10)
    recorded = run.details["counts"]["chat_messages"]
    assert 30 < recorded < 30 + after_backup  # a snapshot taken while the writes went on
    assert ChatMessage.objects.count() > recorded
    check = maintenance.run("verify_backup", actor="test", path=run.details["path"])
    assert check.status == "ok", check.summary
    assert check.details["found"]["chat_messages"] == recorded


def _replace_dump(dump: Path, new_content_from: list[str]) -> None:
    """Overwrite a backup with another pg_dump, and make its record's checksum match it."""
    from ops.maintenance.pg import Target, run_client

    target = Target.default()
    run_client("pg_dump", ["--format=custom", "--file", str(dump), *new_content_from, *target.args()], target)
    _replace_dump_record(dump)


def test_a_backup_whose_content_disagrees_with_its_recorded_counts_fails_the_check(backup_dir, data):
    dump = Path(good_backup().details["path"])
    # A dump without the messages: they are in chat_messages' partitions, chat_messages_*.
    _replace_dump(dump, ["--exclude-table-data=chat_messages*"])
    check = maintenance.run("verify_backup", actor="test")
    check.refresh_from_db()
    assert check.status == "failed"
    assert "chat_messages 30 recorded, 0 restored" in check.summary
    assert check.details["found"]["chat_messages"] == 0
    error = AuditLog.objects.get(action="maintenance.verify_backup_error")
    assert error.details["run"] == check.pk
    assert metric("deia_maintenance_runs_total", task="verify_backup", result="failed") == 1
    assert metric("deia_maintenance_last_success_timestamp_seconds", task="verify_backup") in (None, 0)


def test_a_truncated_backup_is_refused_by_the_check_and_by_restore(backup_dir, data):
    dump = Path(good_backup().details["path"])
    content = dump.read_bytes()
    dump.write_bytes(content[: len(content) // 2])
    check = maintenance.run("verify_backup", actor="test")
    assert check.status == "failed"
    assert "truncated or replaced" in check.summary
    with pytest.raises(CommandError, match=r"restore refused: .*truncated"):
        call_command("restore", str(dump), "--yes")
    assert Bot.objects.count() == 2 and ChatMessage.objects.count() == 30
    assert not AuditLog.objects.filter(action="ops.restore").exists()


def test_a_foreign_file_is_refused_by_the_check_and_by_restore(backup_dir, data):
    dump = Path(good_backup().details["path"])
    dump.write_bytes(b"PK\x03\x04 this is a zip file, not a pg_dump archive" * 100)
    _replace_dump_record(dump)
    check = maintenance.run("verify_backup", actor="test", path=str(dump))
    assert check.status == "failed"
    assert "pg_restore failed" in check.summary
    with pytest.raises(CommandError, match="restore refused: pg_restore failed"):
        call_command("restore", str(dump), "--yes")
    # A file with no record at all is not a backup taken here.
    stranger = backup_dir / "db_20200101T000000Z.dump"
    stranger.write_bytes(b"anything")
    assert "has no record" in maintenance.run("verify_backup", actor="test", path=str(stranger)).summary
    with pytest.raises(CommandError, match="has no record"):
        call_command("restore", str(stranger), "--yes")
    assert Bot.objects.count() == 2


def _replace_dump_record(dump: Path) -> None:
    """Make the record's size and checksum those of the file now there."""
    meta = json.loads(sidecar_path(dump).read_text())
    meta.update(size=dump.stat().st_size, sha256=sha256_of(dump))
    sidecar_path(dump).write_text(json.dumps(meta))


def _assert_failed_cleanly(folder: Path, before: float) -> None:
    run = MaintenanceRun.objects.get(job="backup")
    assert run.status == "failed" and run.finished_at is not None
    assert list(folder.glob("db_*")) == []
    assert list(folder.glob(".db_*")) == []
    error = AuditLog.objects.get(action="maintenance.backup_error")
    assert error.actor == "test" and error.details["run"] == run.pk
    assert metric("deia_backup_last_success_timestamp_seconds") == before
    assert metric("deia_maintenance_runs_total", task="backup", result="failed") == 1


def test_a_backup_into_a_full_folder_fails_cleanly(settings, tmpfs, data):
    folder = tmpfs("64k")
    fill(folder)
    settings.BACKUP_DIR = folder
    BACKUP_LAST_SUCCESS.set(1234.0)
    run = maintenance.run("backup", actor="test")
    assert run.status == "failed"
    assert "No space left on device" in run.summary or "No space" in json.dumps(run.details)
    (folder / "filler").unlink()  # the folder holds only what the backup left behind
    _assert_failed_cleanly(folder, 1234.0)


def test_a_backup_into_a_read_only_folder_fails_cleanly(settings, tmpfs, data):
    folder = tmpfs("1m", read_only=True)
    settings.BACKUP_DIR = folder
    BACKUP_LAST_SUCCESS.set(1234.0)
    with pytest.raises(CommandError, match=r"backup failed: .*Read-only file system"):
        call_command("backup")
    MaintenanceRun.objects.filter(job="backup").update(actor="test")
    AuditLog.objects.filter(action="maintenance.backup_error").update(actor="test")
    _assert_failed_cleanly(folder, 1234.0)


def test_restore_with_yes_brings_the_data_back_and_without_it_changes_nothing(backup_dir, data):
    dump = Path(good_backup().details["path"])
    ChatMessage.objects.all().delete()
    Bot.objects.filter(slug="sales").delete()
    with pytest.raises(CommandError, match="add --yes"):
        call_command("restore", str(dump))
    assert Bot.objects.count() == 1
    call_command("restore", str(dump), "--yes")
    assert Bot.objects.count() == 2
    assert ChatMessage.objects.count() == 30
    restored = AuditLog.objects.get(action="ops.restore")
    assert restored.target == dump.name and restored.actor.startswith("cli")


def test_pg_dump_gets_the_password_from_its_environment_never_its_command_line(backup_dir, data, monkeypatch):
    seen = []
    real_run = subprocess.run

    def spy(args, **kwargs):
        seen.append((list(args), kwargs.get("env") or {}))
        return real_run(args, **kwargs)

    monkeypatch.setattr(subprocess, "run", spy)
    good_backup()
    password = connection.settings_dict["PASSWORD"]
    assert seen and any("pg_dump" in args[0] for args, _ in seen)
    for args, env in seen:
        # (Here the password equals the role's name, so look for how it could be passed.)
        flat = " ".join(args).lower()
        assert "://" not in flat and f":{password}@" not in flat
        assert "password=" not in flat and "--password" not in flat.replace("--no-password", "")
        assert env.get("PGPASSWORD") == password


def test_the_backup_command_prints_one_line_and_records_the_run(backup_dir, data, capsys):
    call_command("backup")
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1 and out[0].startswith("backup ok: db_")
    assert len(backup_files()) == 1
    assert MaintenanceRun.objects.get(job="backup").actor.startswith("cli")
    audited = AuditLog.objects.get(action="maintenance.backup")
    assert audited.actor.startswith("cli")
    assert audited.details["sha256"] == sha256_of(backup_files()[0])
    assert audited.details["path"].endswith(backup_files()[0].name)


def _manage(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [PYTHON, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False
    )


def _scratch_databases() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_database WHERE datname LIKE 'deia_restorecheck_%%'")
        return cursor.fetchone()[0]


def test_a_backup_with_one_byte_flipped_is_refused_by_its_checksum_and_nothing_changes(backup_dir, data, child_env):
    dump = Path(good_backup().details["path"])
    content = bytearray(dump.read_bytes())
    content[len(content) // 2] ^= 0xFF  # same size, different bytes: only the checksum can tell
    dump.write_bytes(bytes(content))
    assert dump.stat().st_size == json.loads(sidecar_path(dump).read_text())["size"]
    Bot.objects.filter(slug="sales").delete()  # a change the restore would undo
    audits = AuditLog.objects.count()
    env = {**child_env, "BACKUP_DIR": str(backup_dir)}

    for args in (("restore", str(dump), "--yes"), ("verify_backup", str(dump))):
        done = _manage(env, *args)
        assert done.returncode != 0, args
        lines = error_lines(done.stderr)
        assert len(lines) == 1 and "checksum does not match" in lines[0], done.stderr
        assert "Traceback" not in done.stderr

    assert Bot.objects.count() == 1 and ChatMessage.objects.count() == 30
    assert not AuditLog.objects.filter(action="ops.restore").exists()
    # The failed check is recorded (run + error audit), nothing else was written.
    assert list(AuditLog.objects.order_by("id").values_list("action", flat=True)[audits:]) == [
        "maintenance.verify_backup_error"
    ]
    assert _scratch_databases() == 0


def test_a_client_tool_writing_undecodable_bytes_fails_with_one_line_not_a_traceback(
    settings, backup_dir, data, tmp_path
):
    dump = Path(good_backup().details["path"])
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "pg_restore"  # how pg_restore quotes a damaged archive's bytes
    fake.write_text("#!/bin/sh\nprintf 'pg_restore: error: bad entry \\253\\377\\n' >&2\nexit 1\n")
    fake.chmod(0o755)
    settings.PG_BIN_DIR = str(bin_dir)
    with pytest.raises(CommandError, match=r"^restore refused: pg_restore failed: .*bad entry") as refused:
        call_command("restore", str(dump), "--yes")
    assert "\n" not in str(refused.value)
    assert Bot.objects.count() == 2 and not AuditLog.objects.filter(action="ops.restore").exists()
