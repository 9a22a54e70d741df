"""What the benchmarks share: a gunicorn of the real app, started, awaited and stopped;
repeated measurements summarised as median and range; the machine's load while measuring."""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

from tests.support.procs import free_port, http_ok, wait_for

ROOT = Path(__file__).resolve().parent.parent


@contextlib.contextmanager
def gunicorn(app: str = "deia.asgi:application", **env_overrides: str) -> Iterator[str]:
    """Yield the base URL of gunicorn serving `app` on a free port, with its own scratch var dir."""
    port = free_port()
    var_dir = tempfile.mkdtemp(prefix="deia-bench-")
    env = {**os.environ, "GUNICORN_BIND": f"127.0.0.1:{port}", "DEIA_VAR_DIR": var_dir, "LOG_LEVEL": "WARNING"}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    if smoke():
        env.setdefault("GUNICORN_WORKERS", "1")  # a check that the scenario runs: one worker will do
    env.update(env_overrides)
    web = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-c", "deploy/gunicorn.conf.py", app],
        cwd=ROOT,
        env=env,
        start_new_session=True,
        stdout=sys.stderr,  # its log lines are progress, not part of the Markdown section
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: http_ok(f"{base}/health"), timeout=120, what="gunicorn /health")
        yield base
    finally:
        os.killpg(web.pid, signal.SIGTERM)
        web.wait(30)
        shutil.rmtree(var_dir, ignore_errors=True)


def start_runner(bot_id: int, **env_overrides: str) -> tuple[subprocess.Popen, str, dict[str, str]]:
    """Start `manage.py runbot` for a bot on a free port: (process, base URL, /chat's headers)."""
    port = free_port()
    secret = secrets.token_urlsafe(16)
    env = {**os.environ, "DB_POOL_MAX_SIZE": "4", "LOG_LEVEL": "WARNING", "PYTHONUNBUFFERED": "1"}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    env.update(DEIA_BOT_SECRET=secret, **env_overrides)
    proc = subprocess.Popen(
        [sys.executable, "manage.py", "runbot", str(bot_id), "--port", str(port)],
        cwd=ROOT,
        env=env,
        start_new_session=True,
        stdout=sys.stderr,
    )
    url = f"http://127.0.0.1:{port}"
    wait_for(lambda: http_ok(f"{url}/health") or proc.poll() is not None, timeout=30, what="runner /health")
    if proc.poll() is not None:
        raise RuntimeError(f"runner exited with {proc.returncode}")
    return proc, url, {"X-Bot-Secret": secret}


def stop_process_group(proc: subprocess.Popen) -> None:
    os.killpg(proc.pid, signal.SIGTERM)
    proc.wait(30)


@contextlib.contextmanager
def runner_template() -> Iterator[int | None]:
    """This host's runner template, started and ready before a scenario's starts and killed after.

    As a bots worker does at start-up (worker_ready); None when BOT_RUNNER_TEMPLATE is off.
    Runners forked from it have sessions of their own and outlive it.
    """
    from django.conf import settings

    from bots.lifecycle import template

    if not settings.BOT_RUNNER_TEMPLATE:
        yield None
        return
    template.ensure_started()
    pid = template.wait_ready(template.fingerprint(), timeout=60)
    if pid is None:
        raise RuntimeError(f"no runner template became ready: see {template.template_log()}")
    try:
        yield pid
    finally:
        template.stop()


def load_average() -> str:
    """The 1, 5 and 15 minute load averages, as /proc/loadavg gives them."""
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile by nearest rank (q in 0..100)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def spread(values: list[float], digits: int = 1) -> str:
    """Repeated runs of one measure: "median (min to max)"."""
    median = statistics.median(values)
    return f"{median:.{digits}f} ({min(values):.{digits}f} to {max(values):.{digits}f})"


def repeats(default: int = 3) -> int:
    """How many times each scenario runs (BENCH_REPEATS; at least 3 for published figures)."""
    return max(1, int(os.environ.get("BENCH_REPEATS", default)))


def smoke() -> bool:
    """BENCH_SMOKE=true: tiny sizes, to check that a scenario runs (tests/bench), not to measure."""
    return os.environ.get("BENCH_SMOKE") == "true"


PG_BIN = Path(os.environ.get("PG_BIN", "/usr/lib/postgresql/15/bin"))
PRIVATE_MARK = "BENCH_PRIVATE_POSTGRES"


def _as_postgres(args: list[str]) -> list[str]:
    """PostgreSQL refuses to run as root: as root, run it as the postgres user."""
    return ["runuser", "-u", "postgres", "--", *args] if os.geteuid() == 0 else args


# A migrated database on a private cluster that is already running (the bench smoke tests
# start one for all scenarios): a scenario then gets a copy of it (CREATE DATABASE ... TEMPLATE),
# dropped at the end, instead of a cluster of its own.
SHARED_TEMPLATE = "BENCH_POSTGRES_TEMPLATE_URL"


@contextlib.contextmanager
def database_copy(template_url: str) -> Iterator[str]:
    """A copy of the migrated database at `template_url` (nobody may be connected to it), dropped
    at the end with whatever is still connected; yields its DATABASE_URL."""
    base, template = template_url.rsplit("/", 1)
    name = f"{template}_{os.getpid()}"  # the runners' tags name it: one per scenario run
    admin = [str(PG_BIN / "psql"), f"{base}/postgres", "-qAtX", "-v", "ON_ERROR_STOP=1", "-c"]
    subprocess.run([*admin, f'CREATE DATABASE "{name}" TEMPLATE "{template}"'], check=True, stdout=subprocess.DEVNULL)
    try:
        yield f"{base}/{name}"
    finally:
        subprocess.run([*admin, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'], stdout=subprocess.DEVNULL)


@contextlib.contextmanager
def private_postgres(max_connections: int = 400, migrate: bool = True) -> Iterator[str]:
    """A throw-away PostgreSQL cluster (same version and defaults as the shared one, but
    max_connections, max_wal_size and maintenance_work_mem) on a free port, migrated unless
    `migrate` is false; yields its DATABASE_URL.

    For scenarios the shared server must not take: a hundred runners hold a pooled
    connection each (the shared server's max_connections is 100, and other suites use it),
    and ten million messages would crowd its cache.
    """
    data = Path(tempfile.mkdtemp(prefix="deia-bench-pg-"))
    if os.geteuid() == 0:
        shutil.chown(data, "postgres", "postgres")
    port = free_port()
    name = f"deia_bench_{port}"  # runners are recognised by host/database/bot: one name per cluster
    quiet = {"stdout": subprocess.DEVNULL, "check": True}
    subprocess.run(
        _as_postgres([str(PG_BIN / "initdb"), "-D", str(data), "-U", "deia", "-A", "trust", "-E", "UTF8"]), **quiet
    )
    options = f"-p {port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={data}"
    # Bulk loads (the growth bench) checkpoint less often and build indexes in memory.
    options += f" -c max_connections={max_connections} -c max_wal_size=4GB -c maintenance_work_mem=512MB"
    subprocess.run(
        _as_postgres([str(PG_BIN / "pg_ctl"), "-D", str(data), "-w", "-l", str(data / "log"), "-o", options, "start"]),
        **quiet,
    )
    try:
        subprocess.run([str(PG_BIN / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "deia", name], **quiet)
        url = f"postgres://deia@127.0.0.1:{port}/{name}"
        env = {**os.environ, "DATABASE_URL": url}
        if migrate:
            subprocess.run([sys.executable, "manage.py", "migrate", "--verbosity", "0"], cwd=ROOT, env=env, check=True)
        yield url
    finally:
        subprocess.run(
            _as_postgres([str(PG_BIN / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"]),
            stdout=subprocess.DEVNULL,
        )
        shutil.rmtree(data, ignore_errors=True)


def rerun_in_private_postgres(script: str, max_connections: int = 400) -> int | None:
    """Run `script` again against a private cluster (private_postgres) and return its exit
    code; None when this already is that run. Call it before django.setup()."""
    if os.environ.get(PRIVATE_MARK):
        return None
    shared = os.environ.get(SHARED_TEMPLATE)
    with database_copy(shared) if shared else private_postgres(max_connections) as url:
        env = {**os.environ, "DATABASE_URL": url, PRIVATE_MARK: "1"}
        return subprocess.run([sys.executable, script, *sys.argv[1:]], cwd=ROOT, env=env).returncode


# --- stored messages (growth and history benches) -----------------------------------------
# Rows go in by INSERT ... SELECT generate_series, not the ORM: ten million in minutes. Row i is
# in conversation i / length (conversation_id(n) gives its uuid), of bot (i / length) % bots of
# those whose slug starts with `prefix`, written at start + i * step seconds.
LOAD_MESSAGES = """
INSERT INTO chat_messages
    (bot_id, conversation, role, content, created_at, latency_ms, prompt_tokens, completion_tokens,
     error, interrupted, request_id)
SELECT bot_ids[1 + (i / %(length)s) %% %(bots)s],
       md5('conversation ' || (i / %(length)s))::uuid,
       CASE WHEN i %% 2 = 0 THEN 'user' ELSE 'assistant' END,
       'benchmark message number ' || i || ' of a conversation about nothing in particular',
       %(start)s::timestamptz + i * %(step)s * interval '1 second',
       CASE WHEN i %% 2 = 1 THEN 800 END, CASE WHEN i %% 2 = 1 THEN 40 END, CASE WHEN i %% 2 = 1 THEN 25 END,
       '', false, ''
FROM generate_series(%(first)s, %(last)s) AS i,
     (SELECT array_agg(id ORDER BY id) AS bot_ids FROM bots_bot WHERE slug LIKE %(prefix)s || '%%') AS b
"""
SECONDARY_INDEXES = """
SELECT i.relname, pg_get_indexdef(i.oid) FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid
WHERE x.indrelid = 'chat_messages'::regclass AND NOT x.indisprimary
"""


def conversation_id(n: int):
    """The conversation LOAD_MESSAGES gives to its n-th group of `length` messages."""
    import hashlib
    import uuid

    return uuid.UUID(hashlib.md5(f"conversation {n}".encode()).hexdigest())  # noqa: S324 - an id, not a hash of a secret


def load_messages(cursor, first: int, target: int, *, chunk: int, **args) -> None:
    """Rows first .. target - 1 (LOAD_MESSAGES' args: length, bots, prefix, start, step), in chunks.

    Building an index once is far faster than growing it row by row (the conversation index is
    in random uuid order): the secondary indexes go for the load and come back after it. On the
    partitioned table they are the parent's, and come back on every partition.
    """
    cursor.execute(SECONDARY_INDEXES)
    indexes = cursor.fetchall()
    for name, _ in indexes:
        cursor.execute(f'DROP INDEX "{name}"')
    for low in range(first, target, chunk):
        cursor.execute(LOAD_MESSAGES, {**args, "first": low, "last": min(low + chunk, target) - 1})
    for _, definition in indexes:
        # A partitioned index prints as ON ONLY: that would build it on the parent alone.
        cursor.execute(definition.replace(" ON ONLY ", " ON ", 1))
    from bots import partitions

    if partitions.is_partitioned():
        partitions.name_indexes()  # as the migration and the partitions job name them
    cursor.execute("ANALYZE chat_messages")


def total_size() -> int:
    """chat_messages' bytes with its indexes: all its partitions' (the parent itself holds none)."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT sum(pg_total_relation_size(relid)) FROM pg_partition_tree('chat_messages')")
        return cursor.fetchone()[0]
