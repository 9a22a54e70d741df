"""Backup, restore check and restore on the embedded default (SQLite), through manage.py."""

from __future__ import annotations

import json
import sqlite3
from contextlib import closing
from pathlib import Path

from ops.maintenance.backup import sha256_of, sidecar_path
from tests.support.procs import error_lines

SEED = """
from bots.models import Backend, Bot, ChatMessage, Role
from deia.audit import audit
bot = Bot.objects.create(name="Support", slug="support", backend=Backend.ECHO, model_name="echo")
Bot.objects.create(name="Sales", slug="sales", backend=Backend.ECHO, model_name="echo")
for i in range(12):
    ChatMessage.objects.create(bot=bot, role=Role.USER, content=f"hello {i}")
audit("bot.create", actor="test", target="support")
"""


def backed_up(install) -> Path:
    install.shell(SEED)
    out = install.ok("backup").strip().splitlines()
    assert len(out) == 1 and out[0].startswith("backup ok: db_") and "chat_messages=12" in out[0], out
    (dump,) = install.backups.glob("db_*.sqlite3")
    return dump


def test_on_sqlite_a_backup_is_one_file_with_its_record_and_passes_its_restore_check(sqlite_install):
    dump = backed_up(sqlite_install)
    meta = json.loads(sidecar_path(dump).read_text())
    assert meta["engine"] == "sqlite" and meta["counts"] == {"bots": 2, "chat_messages": 12, "audit_logs": 1}
    assert meta["size"] == dump.stat().st_size and meta["sha256"] == sha256_of(dump)
    with closing(sqlite3.connect(f"file:{dump}?mode=ro", uri=True)) as conn:  # a snapshot, not a link
        assert conn.execute("SELECT count(*) FROM chat_messages").fetchone() == (12,)

    out = sqlite_install.ok("verify_backup")
    assert out.strip() == f"verify_backup ok: {dump.name} restores: bots=2, chat_messages=12, audit_logs=1"
    # The check only read it: the same bytes, and nothing (no -wal/-shm) left beside it.
    assert sha256_of(dump) == meta["sha256"]
    assert sorted(p.name for p in sqlite_install.backups.iterdir()) == [dump.name, sidecar_path(dump).name]
    with closing(sqlite3.connect(sqlite_install.db)) as conn:
        runs = conn.execute("SELECT job, status FROM ops_maintenancerun ORDER BY id").fetchall()
    assert runs == [("backup", "ok"), ("verify_backup", "ok")]


def test_on_sqlite_a_corrupted_backup_is_refused_by_the_check_and_by_restore(sqlite_install):
    dump = backed_up(sqlite_install)
    sqlite_install.shell("from bots.models import Bot; Bot.objects.filter(slug='sales').delete()")
    content = bytearray(dump.read_bytes())
    content[len(content) // 2] ^= 0xFF
    dump.write_bytes(bytes(content))
    for args in (("verify_backup", str(dump)), ("restore", str(dump), "--yes")):
        done = sqlite_install.manage(*args)
        assert done.returncode != 0 and "checksum does not match" in done.stderr, args
        assert len(error_lines(done.stderr)) == 1, done.stderr

    # A damaged file whose record was rewritten to match it is still not restored.
    dump.write_bytes(b"SQLite format 3\0" + b"\xff" * (len(content) - 16))
    meta = json.loads(sidecar_path(dump).read_text())
    sidecar_path(dump).write_text(json.dumps({**meta, "size": dump.stat().st_size, "sha256": sha256_of(dump)}))
    for args in (("verify_backup", str(dump)), ("restore", str(dump), "--yes")):
        done = sqlite_install.manage(*args)
        assert done.returncode != 0 and "not a readable SQLite backup" in done.stderr, (args, done.stderr)
        assert len(error_lines(done.stderr)) == 1, done.stderr

    assert sqlite_install.count("bots_bot") == 1 and sqlite_install.count("chat_messages") == 12
    assert (
        sqlite_install.shell(
            "from deia.models import AuditLog; print(AuditLog.objects.filter(action='ops.restore').count())"
        ).strip()
        == "0"
    )


def test_on_sqlite_restore_brings_back_the_data_after_a_change(sqlite_install):
    dump = backed_up(sqlite_install)
    sqlite_install.shell(
        "from bots.models import Bot, ChatMessage\n"
        "ChatMessage.objects.all().delete()\n"
        "Bot.objects.filter(slug='sales').delete()"
    )
    assert sqlite_install.count("chat_messages") == 0
    refused = sqlite_install.manage("restore", str(dump))
    assert refused.returncode != 0 and "add --yes" in refused.stderr
    assert sqlite_install.count("chat_messages") == 0

    out = sqlite_install.ok("restore", str(dump), "--yes")
    assert out.strip() == f"restore ok: {dump.name} (bots=2, chat_messages=12, audit_logs=1)"
    assert sqlite_install.count("bots_bot") == 2 and sqlite_install.count("chat_messages") == 12
    actions = sqlite_install.shell(
        "from deia.models import AuditLog; print(list(AuditLog.objects.order_by('id').values_list('action', 'actor')))"
    )
    # The restored row, then the restore's own row in the restored database.
    assert "('bot.create', 'test'), ('ops.restore', 'cli:" in actions
    # The application still works on the restored file (it is a database, not a copy of one).
    sqlite_install.shell("from bots.models import Bot; Bot.objects.create(name='New', slug='new')")
    assert sqlite_install.count("bots_bot") == 3
