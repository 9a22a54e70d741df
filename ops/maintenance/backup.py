"""Database backups: take one, check that it restores, restore it for real.

A backup is BACKUP_DIR/db_<UTC timestamp>.dump (pg_dump custom format; SQLite's online
backup API gives db_<ts>.sqlite3) plus a sidecar db_<ts>.dump.json holding its size,
SHA-256 and the row counts of the snapshot it was taken from. Both are written under a
hidden temporary name, fsynced and renamed, so a crash or a full disk never leaves a
file that looks like a good backup. The restore check restores into a scratch database
and compares its counts with the sidecar's.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
import sqlite3
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import connections
from psycopg import IsolationLevel, sql

from ops.maintenance.pg import Target, run_client
from ops.maintenance.runs import JobFailed, Outcome
from ops.metrics import BACKUP_LAST_SUCCESS, BACKUP_SIZE

# The tables whose row counts prove that a restore brought the data back.
COUNTED = ("bots", "chat_messages", "audit_logs")
BACKUP_NAME = re.compile(r"^db_\d{8}T\d{6}Z(?:-\d+)?\.(?:dump|sqlite3)$")
SIDECAR_SUFFIX = ".json"
CHUNK = 1 << 20


def counted_tables() -> dict[str, str]:
    """Name in reports -> real table name (Bot has Django's default table name)."""
    from django.apps import apps

    return {
        "bots": apps.get_model("bots", "Bot")._meta.db_table,
        "chat_messages": apps.get_model("bots", "ChatMessage")._meta.db_table,
        "audit_logs": apps.get_model("deia", "AuditLog")._meta.db_table,
    }


# --- files --------------------------------------------------------------------------
def sidecar_path(path: Path) -> Path:
    return path.with_name(path.name + SIDECAR_SUFFIX)


def backup_files(folder: Path | None = None) -> list[Path]:
    """Backups in the folder, oldest first (the timestamp is in the name)."""
    folder = settings.BACKUP_DIR if folder is None else folder
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if BACKUP_NAME.match(p.name) and p.is_file())


def latest_backup() -> Path:
    files = backup_files()
    if not files:
        raise JobFailed(f"no backup in {settings.BACKUP_DIR}")
    return files[-1]


def read_sidecar(path: Path) -> dict[str, Any]:
    try:
        meta = json.loads(sidecar_path(path).read_text())
    except FileNotFoundError:
        raise JobFailed(f"{path.name} has no record ({sidecar_path(path).name}): not a backup taken here") from None
    except (OSError, ValueError) as exc:
        raise JobFailed(f"{sidecar_path(path).name} is unreadable: {exc}") from None
    if not isinstance(meta, dict) or not {"sha256", "size", "counts"} <= set(meta):
        raise JobFailed(f"{sidecar_path(path).name} is not a backup record")
    return meta


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def check_file(path: Path) -> dict[str, Any]:
    """The sidecar of a backup whose size and checksum match it; JobFailed otherwise."""
    if not path.is_file():
        raise JobFailed(f"{path} does not exist")
    meta = read_sidecar(path)
    size = path.stat().st_size
    if size != meta["size"]:
        raise JobFailed(f"{path.name} is {size} bytes, {meta['size']} were recorded: truncated or replaced")
    digest = sha256_of(path)
    if digest != meta["sha256"]:
        raise JobFailed(f"{path.name} checksum does not match the recorded one", {"sha256": digest})
    return meta


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_atomically(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.partial")
    try:
        with open(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        tmp.rename(path)
    finally:
        tmp.unlink(missing_ok=True)


def _new_name(folder: Path, suffix: str) -> Path:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    path, n = folder / f"db_{stamp}.{suffix}", 0
    while path.exists() or sidecar_path(path).exists():
        n += 1
        path = folder / f"db_{stamp}-{n}.{suffix}"
    return path


# --- backup -------------------------------------------------------------------------
def backup() -> Outcome:
    folder = settings.BACKUP_DIR
    try:
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as exc:
        raise JobFailed(f"cannot create {folder}: {exc.strerror}") from None
    engine = "postgresql" if settings.DATABASE_IS_POSTGRES else "sqlite"
    final = _new_name(folder, "dump" if engine == "postgresql" else "sqlite3")
    tmp = final.with_name(f".{final.name}.partial")
    started = time.monotonic()
    try:
        counts = _dump_postgres(tmp) if engine == "postgresql" else _dump_sqlite(tmp)
        # Explicitly, not only through the umask: a backup holds every secret of the database.
        tmp.chmod(0o600)
        _fsync(tmp)
        meta = {
            "file": final.name,
            "engine": engine,
            "database": connections["default"].settings_dict["NAME"] if engine == "postgresql" else "",
            "created_at": datetime.now(UTC).isoformat(),
            "size": tmp.stat().st_size,
            "sha256": sha256_of(tmp),
            "counts": counts,
            "duration_seconds": round(time.monotonic() - started, 3),
        }
        # Record first, then the dump: a dump without its record is never taken for good.
        _write_atomically(sidecar_path(final), json.dumps(meta, indent=2))
        tmp.rename(final)
        _fsync(folder)
    except OSError as exc:
        sidecar_path(final).unlink(missing_ok=True)
        raise JobFailed(f"backup to {folder} failed: {exc.strerror or exc}") from None
    except BaseException:
        sidecar_path(final).unlink(missing_ok=True)
        raise
    finally:
        tmp.unlink(missing_ok=True)
    BACKUP_LAST_SUCCESS.set(time.time())
    BACKUP_SIZE.set(meta["size"])
    return Outcome(
        f"{final.name}: {_human(meta['size'])} in {meta['duration_seconds']:.1f} s, {_counts_text(counts)}",
        {**meta, "path": str(final)},
        changed=True,
    )


def _dump_postgres(out: Path) -> dict[str, int]:
    """pg_dump of exactly the snapshot whose rows we count.

    The counting transaction exports its snapshot and stays open while pg_dump adopts it,
    so rows inserted during the dump are in neither: the record and the dump agree.
    """
    target = Target.default()
    with target.connect() as conn:
        conn.isolation_level = IsolationLevel.REPEATABLE_READ
        conn.read_only = True
        snapshot = conn.execute("SELECT pg_export_snapshot()").fetchone()[0]
        counts = _count(conn)
        run_client(
            "pg_dump",
            ["--format=custom", f"--snapshot={snapshot}", "--no-password", "--file", str(out), *target.args()],
            target,
        )
        conn.rollback()
    return counts


def _count(conn) -> dict[str, int]:
    counts = {}
    for label, table in counted_tables().items():
        query = sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(table))
        counts[label] = conn.execute(query).fetchone()[0]
    return counts


def _dump_sqlite(out: Path) -> dict[str, int]:
    source = sqlite3.connect(connections["default"].settings_dict["NAME"])
    copy = sqlite3.connect(out)
    try:
        # One step (pages=-1): the copy is a single consistent snapshot.
        source.backup(copy)
        # The copy inherits the live database's WAL mode, in which even a read-only open
        # creates -wal/-shm files beside it (and fails in a read-only folder): a backup is
        # one self-contained file, so it gets the rollback journal before it is checksummed.
        copy.execute("PRAGMA journal_mode=DELETE")
        return _count_sqlite(copy)
    finally:
        copy.close()
        source.close()


def _count_sqlite(conn: sqlite3.Connection) -> dict[str, int]:
    return {
        label: conn.execute(f'SELECT count(*) FROM "{table}"').fetchone()[0]  # noqa: S608 - our table names
        for label, table in counted_tables().items()
    }


# --- restore check ------------------------------------------------------------------
def verify_backup(path: str | Path | None = None) -> Outcome:
    file = Path(path) if path else latest_backup()
    meta = check_file(file)
    started = time.monotonic()
    found = _verify_sqlite(file) if meta.get("engine", "postgresql") == "sqlite" else _verify_postgres(file)
    details = {
        "file": file.name,
        "path": str(file),
        "sha256": meta["sha256"],
        "expected": meta["counts"],
        "found": found,
        "duration_seconds": round(time.monotonic() - started, 3),
    }
    if found != meta["counts"]:
        differ = ", ".join(f"{k} {meta['counts'].get(k)} recorded, {found.get(k)} restored" for k in COUNTED)
        raise JobFailed(f"{file.name} restored with different row counts: {differ}", details)
    return Outcome(f"{file.name} restores: {_counts_text(found)}", details)


def _verify_postgres(file: Path) -> dict[str, int]:
    target = Target.default()
    # Reading the table of contents first turns a foreign file into a clear message.
    run_client("pg_restore", ["--list", str(file)], target, timeout=120)
    scratch = f"deia_restorecheck_{datetime.now(UTC):%Y%m%d%H%M%S}_{secrets.token_hex(3)}"
    with target.connect(autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(scratch)))
    try:
        run_client(
            "pg_restore",
            ["--no-owner", "--no-privileges", "--exit-on-error", "--no-password", *target.args(scratch), str(file)],
            target,
        )
        with target.connect(scratch) as conn:
            return _count(conn)
    finally:
        with target.connect(autocommit=True) as admin:
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(scratch)))


def _verify_sqlite(file: Path) -> dict[str, int]:
    conn = sqlite3.connect(f"file:{file}?mode=ro", uri=True)
    try:
        result = conn.execute("PRAGMA integrity_check").fetchone()[0]
        if result != "ok":
            raise JobFailed(f"{file.name} fails SQLite's integrity check: {result}")
        return _count_sqlite(conn)
    except sqlite3.DatabaseError as exc:
        raise JobFailed(f"{file.name} is not a readable SQLite backup: {exc}") from None
    finally:
        conn.close()


# --- restore for real ---------------------------------------------------------------
def restore(path: str | Path) -> dict[str, Any]:
    """Replace the application's data with a backup's. The caller has asked the operator.

    Refuses a file without its record or whose checksum differs. PostgreSQL restores in
    one transaction (--single-transaction): it either all lands or nothing changes.
    """
    file = Path(path)
    meta = check_file(file)
    if meta.get("engine", "postgresql") == "sqlite":
        if settings.DATABASE_IS_POSTGRES:
            raise JobFailed(f"{file.name} is a SQLite backup; this installation uses PostgreSQL")
        _verify_sqlite(file)
        connections.close_all()
        source, live = sqlite3.connect(file), sqlite3.connect(connections["default"].settings_dict["NAME"])
        try:
            source.backup(live)
        finally:
            source.close()
            live.close()
    else:
        if not settings.DATABASE_IS_POSTGRES:
            raise JobFailed(f"{file.name} is a PostgreSQL backup; this installation uses SQLite")
        target = Target.default()
        order = restore_order(run_client("pg_restore", ["--list", str(file)], target, timeout=120))
        connections.close_all()
        with tempfile.TemporaryDirectory(prefix="deia-restore-") as folder:
            listing = Path(folder) / "toc.list"
            listing.write_text(order)
            _restore_postgres(file, listing, target)
    return {"file": file.name, "sha256": meta["sha256"], "counts": meta["counts"]}


# A table of contents line: "<id>; <catalog> <oid> <TYPE> <schema> <name> ..." (pg_restore --list).
TOC_ENTRY = re.compile(r"^\d+; \d+ \d+ (?P<type>TABLE ATTACH|CONSTRAINT) \S+ (?P<table>\S+) ")


def restore_order(listing: str) -> str:
    """pg_restore's table of contents, each partition's own constraints moved before the others.

    --clean drops in the reverse order of the list: as pg_dump lists them, a partition's
    primary key would be dropped before its parent's, which PostgreSQL refuses (cannot drop
    inherited constraint). Moved first, they are created first (each on its partition, then
    attached to the parent's as before) and dropped last, by then gone with the parent's.
    """
    lines = listing.splitlines()
    entries = [(line, TOC_ENTRY.match(line)) for line in lines]
    partitions = {m["table"] for _, m in entries if m and m["type"] == "TABLE ATTACH"}
    own = [line for line, m in entries if m and m["type"] == "CONSTRAINT" and m["table"] in partitions]
    rest = [line for line in lines if line not in own]
    first = next((i for i, line in enumerate(rest) if (m := TOC_ENTRY.match(line)) and m["type"] == "CONSTRAINT"), 0)
    return "\n".join(rest[:first] + own + rest[first:]) + "\n"


def _restore_postgres(file: Path, listing: Path, target: Target) -> None:
    run_client(
        "pg_restore",
        [
            "--clean",
            "--if-exists",
            "--no-owner",
            "--no-privileges",
            "--single-transaction",
            "--exit-on-error",
            "--no-password",
            f"--use-list={listing}",
            *target.args(),
            str(file),
        ],
        target,
    )


def _counts_text(counts: dict[str, int]) -> str:
    return ", ".join(f"{k}={v}" for k, v in counts.items())


def _human(size: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size} B"
