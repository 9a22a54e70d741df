"""The runbooks' checks as code: `manage.py diagnose`, the Operations page, the health report.

Each check measures one thing and returns OK / WARN / CRIT with the measured value, the
threshold it was held against and, when not OK, the next step from the runbook. Every
check runs in its own thread with a deadline, so a dead dependency costs a timeout, not
a hang. When the database is unreachable the checks that read it say "not checked"
instead of piling more CRIT lines onto the one that matters.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from enum import IntEnum
from pathlib import Path

import httpx
import psycopg
from django.conf import settings
from django.core.cache import cache
from django.db import connection
from django.utils import timezone

from bots.models import Backend, Bot, Status
from deia.audit_actions import Severity
from deia.models import AuditLog
from deia.redact import redact
from ops.health import check_broker, run_in_thread
from ops.maintenance.pg import Target
from ops.maintenance.runs import last_finished, last_success


class Level(IntEnum):
    OK = 0
    WARN = 1
    CRIT = 2


@dataclass
class Check:
    name: str
    level: Level
    value: str
    threshold: str = ""
    next_step: str = ""

    def __post_init__(self) -> None:
        # Reasons quote exceptions, and those may quote a URL with its password.
        self.value = redact(self.value)

    def line(self) -> str:
        text = f"{self.level.name:<4} {self.name:<20} {self.value}"
        if self.threshold:
            text += f" (threshold: {self.threshold})"
        if self.level != Level.OK and self.next_step:
            text += f" -> next: {self.next_step}"
        return text

    def as_dict(self) -> dict:
        return {**asdict(self), "level": self.level.name}


def ok(name: str, value: str, threshold: str = "") -> Check:
    return Check(name, Level.OK, value, threshold)


def _graded(name: str, value: float, warn: float, crit: float, text: str, step: str, *, below: bool) -> Check:
    """A level from a number: `below` means smaller is worse (free disk), else larger is."""
    bad = (lambda limit: value < limit) if below else (lambda limit: value > limit)
    sign = "<" if below else ">"
    threshold = f"warn {sign} {warn:g}, crit {sign} {crit:g}"
    level = Level.CRIT if bad(crit) else Level.WARN if bad(warn) else Level.OK
    return Check(name, level, text, threshold, step)


# --- the web, the database ----------------------------------------------------------
def check_web() -> Check:
    url = f"{settings.DIAGNOSE_WEB_URL}/health"
    started = time.perf_counter()
    try:
        response = httpx.get(url, timeout=settings.DIAGNOSE_TIMEOUT)
    except httpx.HTTPError as exc:
        return Check(
            "web",
            Level.CRIT,
            f"{url} unreachable: {type(exc).__name__}",
            "HTTP 200",
            "runbooks/service-outage.md: systemctl status deia-web; journalctl -u deia-web -n 50",
        )
    ms = (time.perf_counter() - started) * 1000
    if response.status_code != 200:
        return Check(
            "web",
            Level.CRIT,
            f"{url} answered {response.status_code}",
            "HTTP 200",
            "runbooks/service-outage.md: journalctl -u deia-web -n 50",
        )
    return ok("web", f"{url} answered 200 in {ms:.0f} ms", "HTTP 200")


def _select_one() -> None:
    if not settings.DATABASE_IS_POSTGRES:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        return
    # A connection of its own, not the pool's: the pool would retry for its whole timeout
    # and hide the reason ("connection refused", "password authentication failed").
    target = Target.default()
    with psycopg.connect(
        dbname=target.name,
        user=target.user or None,
        password=target.password or None,
        host=target.host or None,
        port=target.port,
        connect_timeout=max(1, int(settings.DIAGNOSE_TIMEOUT)),
        application_name="deia-diagnose",
    ) as conn:
        conn.execute("SELECT 1").fetchone()


def check_database() -> Check:
    started = time.perf_counter()
    try:
        _select_one()
    except Exception as exc:  # noqa: BLE001 - unreachable, whatever the reason
        lines = str(exc).strip().splitlines()
        reason = lines[0][:200] if lines else type(exc).__name__
        return Check(
            "database",
            Level.CRIT,
            f"unreachable: {reason}",
            "SELECT 1 answers",
            "runbooks/postgres-down.md: systemctl status postgresql; check DATABASE_URL",
        )
    ms = (time.perf_counter() - started) * 1000
    return _graded(
        "database",
        ms,
        100,
        1000,
        f"connect and SELECT 1 in {ms:.1f} ms",
        "runbooks/database-connections.md: look for load and slow queries",
        below=False,
    )


PG_ONLY = "not PostgreSQL (SQLite)"


def check_db_connections() -> Check:
    if not settings.DATABASE_IS_POSTGRES:
        return ok("db_connections", PG_ONLY)
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FILTER (WHERE backend_type = 'client backend'), current_setting('max_connections')::int "
            "FROM pg_stat_activity"
        )
        used, limit = cursor.fetchone()
    percent = 100.0 * used / limit
    return _graded(
        "db_connections",
        percent,
        80,
        95,
        f"{used} of max_connections {limit} ({percent:.0f} %)",
        "runbooks/database-connections.md: manage.py terminate_idle_connections --dry-run, then without --dry-run",
        below=False,
    )


# Our own backup holds a snapshot transaction open while pg_dump runs: not a stuck session.
OTHERS = (
    "datname = current_database() AND pid <> pg_backend_pid() AND backend_type = 'client backend' "
    "AND coalesce(application_name, '') <> 'deia-maintenance'"
)


def _sessions(condition: str, since: str) -> list[tuple[int, float]]:
    """(pid, seconds) of other client sessions of this database matching `condition`
    for longer than SLOW_QUERY_SECONDS, measured from the column `since`."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT pid, extract(epoch FROM now() - {since})::float FROM pg_stat_activity WHERE {OTHERS} "  # noqa: S608
            f"AND {condition} AND now() - {since} > make_interval(secs => %s) ORDER BY {since}",
            [settings.SLOW_QUERY_SECONDS],
        )
        return cursor.fetchall()


def check_slow_queries() -> Check:
    if not settings.DATABASE_IS_POSTGRES:
        return ok("slow_queries", PG_ONLY)
    rows = _sessions("state = 'active'", "query_start")
    threshold = f"none running > {settings.SLOW_QUERY_SECONDS:g} s"
    if not rows:
        return ok("slow_queries", "0 queries", threshold)
    listed = ", ".join(f"pid {pid} {seconds:.0f} s" for pid, seconds in rows[:5])
    return Check(
        "slow_queries",
        Level.WARN,
        f"{len(rows)} queries: {listed}",
        threshold,
        f"runbooks/database-connections.md: manage.py cancel_query {rows[0][0]} (shows it), then --yes to cancel",
    )


def check_idle_in_transaction() -> Check:
    if not settings.DATABASE_IS_POSTGRES:
        return ok("idle_in_transaction", PG_ONLY)
    rows = _sessions("state LIKE 'idle in transaction%%'", "state_change")
    threshold = f"none idle in a transaction > {settings.SLOW_QUERY_SECONDS:g} s"
    if not rows:
        return ok("idle_in_transaction", "0 sessions", threshold)
    return Check(
        "idle_in_transaction",
        Level.WARN,
        f"{len(rows)} sessions: pids {', '.join(str(pid) for pid, _ in rows[:10])}",
        threshold,
        "they hold locks and block VACUUM: find the client (pg_stat_activity.application_name) and fix or end it",
    )


# --- Redis, the broker, the workers -------------------------------------------------
def check_redis() -> Check:
    if not settings.REDIS_URL:
        return ok("redis", "not configured (local-memory cache)")
    import redis

    client = redis.Redis.from_url(
        settings.REDIS_URL, socket_timeout=settings.DIAGNOSE_TIMEOUT, socket_connect_timeout=settings.DIAGNOSE_TIMEOUT
    )
    try:
        info = client.info("memory")
    except redis.RedisError as exc:
        return Check(
            "redis",
            Level.CRIT,
            f"unreachable: {exc}",
            "PING answers",
            "runbooks/redis-down.md: systemctl status redis-server; check REDIS_URL",
        )
    finally:
        client.close()
    used, limit, policy = info["used_memory"], info.get("maxmemory", 0), info.get("maxmemory_policy", "?")
    # Tasks queued on a shared broker have no TTL: volatile-* evicts only the cache's keys.
    policy_step = "redis-cli CONFIG SET maxmemory-policy volatile-lru (allkeys-lru if the broker is elsewhere)"
    if not limit:
        return Check(
            "redis",
            Level.WARN,
            f"{used / 1048576:.1f} MiB used, no maxmemory (policy {policy})",
            "maxmemory set, an evicting policy",
            f"runbooks/redis-memory-near-max.md: redis-cli CONFIG SET maxmemory 256mb; {policy_step}",
        )
    percent = 100.0 * used / limit
    check = _graded(
        "redis",
        percent,
        80,
        95,
        f"{used / 1048576:.1f} of {limit / 1048576:.0f} MiB ({percent:.0f} %), policy {policy}",
        "runbooks/redis-memory-near-max.md: manage.py clear_cache --yes, or raise maxmemory",
        below=False,
    )
    if check.level == Level.OK and policy == "noeviction":
        check.level, check.next_step = Level.WARN, f"runbooks/redis-memory-near-max.md: {policy_step}"
        check.threshold += ", an evicting policy"
    return check


def check_broker_reachable() -> Check:
    try:
        detail = check_broker()
    except Exception as exc:  # noqa: BLE001
        return Check(
            "broker",
            Level.CRIT,
            f"unreachable: {exc}",
            "connects",
            "check CELERY_BROKER_URL / REDIS_URL and the Redis service",
        )
    return ok("broker", detail or "connected")


def check_workers() -> Check:
    from deia.celery import app

    if (app.conf.broker_url or "").startswith("filesystem"):
        return Check(
            "workers",
            Level.WARN,
            "cannot ping workers over the filesystem broker",
            "one worker answers",
            "use Redis (REDIS_URL) in production; check the worker processes with ps",
        )
    replies = app.control.ping(timeout=min(2.0, settings.DIAGNOSE_TIMEOUT / 2)) or []
    names = sorted(name for reply in replies for name in reply)
    if not names:
        return Check(
            "workers",
            Level.WARN,
            "no worker answered a ping",
            "at least one answers",
            "systemctl status deia-worker deia-maintenance; journalctl -u deia-worker -n 50",
        )
    return ok("workers", f"{len(names)} answered: {', '.join(names)}", "at least one answers")


# --- the LLM backend ----------------------------------------------------------------
def check_llm() -> Check:
    wanted = dict(Bot.objects.filter(backend=Backend.OLLAMA).values_list("slug", "model_name"))
    if not wanted:
        return ok("llm", "no bot uses the ollama backend")
    try:
        response = httpx.get(f"{settings.OLLAMA_URL}/api/tags", timeout=settings.DIAGNOSE_TIMEOUT)
        response.raise_for_status()
        present = {m.get("name", "") for m in response.json().get("models", [])}
    except (httpx.HTTPError, ValueError) as exc:
        return Check(
            "llm",
            Level.CRIT,
            f"{settings.OLLAMA_URL} unreachable: {type(exc).__name__}",
            "/api/tags answers",
            "runbooks/deia-llm-backend-down.md: systemctl status ollama; curl $OLLAMA_URL/api/tags",
        )
    missing = sorted(
        f"{slug}: {model}"
        for slug, model in wanted.items()
        if model not in present and f"{model}:latest" not in present
    )
    if missing:
        return Check(
            "llm",
            Level.WARN,
            f"models missing for {len(missing)} bots ({'; '.join(missing[:5])})",
            "every bot's model present",
            "ollama pull <model> on the LLM host",
        )
    return ok("llm", f"reachable, {len(wanted)} ollama bots' models present")


# --- the host: disk and memory ------------------------------------------------------
def _existing(path: Path) -> Path:
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def _disk(name: str, path: Path) -> Check:
    usage = shutil.disk_usage(_existing(path))
    percent = 100.0 * usage.free / usage.total
    return _graded(
        name,
        percent,
        settings.DIAGNOSE_DISK_WARN_PERCENT,
        settings.DIAGNOSE_DISK_CRIT_PERCENT,
        f"{path}: {percent:.0f} % free ({usage.free / 1073741824:.1f} GiB)",
        "manage.py rotate_backups; manage.py cleanup_logs; du -sh /var/* to find the rest",
        below=True,
    )


def check_disk_root() -> Check:
    return _disk("disk_root", Path("/"))


def check_disk_backups() -> Check:
    return _disk("disk_backups", settings.BACKUP_DIR)


def check_memory() -> Check:
    try:
        fields = dict(line.split(":", 1) for line in Path("/proc/meminfo").read_text().splitlines() if ":" in line)
        total = int(fields["MemTotal"].split()[0])
        available = int(fields["MemAvailable"].split()[0])
    except (OSError, KeyError, ValueError):
        return Check("memory", Level.WARN, "cannot read /proc/meminfo", "", "free -h")
    percent = 100.0 * available / total
    return _graded(
        "memory",
        percent,
        settings.DIAGNOSE_MEMORY_WARN_PERCENT,
        settings.DIAGNOSE_MEMORY_CRIT_PERCENT,
        f"{percent:.0f} % available ({available / 1048576:.1f} of {total / 1048576:.1f} GiB)",
        "runbooks/high-memory-usage.md: ps aux --sort=-%mem | head; manage.py stop_least_used --keep N",
        below=True,
    )


# --- backups, errors, bots (from the database) ---------------------------------------
def _age_hours(moment) -> float:
    return (timezone.now() - moment).total_seconds() / 3600


def check_last_backup() -> Check:
    limit = settings.DIAGNOSE_BACKUP_MAX_AGE_HOURS
    threshold = f"crit > {limit:g} h"
    step = "manage.py backup; check deia-maintenance, deia-beat and BACKUP_DIR (runbooks/deia-backup-too-old.md)"
    run = last_success("backup")
    if run is None:
        return Check("last_backup", Level.CRIT, "no good backup recorded", threshold, step)
    age = _age_hours(run.finished_at or run.started_at)
    level = Level.CRIT if age > limit else Level.OK
    return Check("last_backup", level, f"{age:.1f} h ago ({run.details.get('file', '?')})", threshold, step)


def check_last_restore_check() -> Check:
    days = settings.DIAGNOSE_RESTORE_CHECK_MAX_AGE_DAYS
    threshold = f"warn > {days:g} days; crit when the last one failed"
    latest = last_finished("verify_backup")
    if latest is not None and latest.status == latest.Status.FAILED:
        return Check(
            "last_restore_check",
            Level.CRIT,
            f"last check failed: {latest.summary}",
            threshold,
            "the backups may not restore: read the run in the admin, then manage.py backup && manage.py verify_backup",
        )
    run = last_success("verify_backup")
    step = "manage.py verify_backup"
    if run is None:
        return Check("last_restore_check", Level.WARN, "no restore check recorded", threshold, step)
    age = _age_hours(run.finished_at or run.started_at) / 24
    level = Level.WARN if age > days else Level.OK
    return Check("last_restore_check", level, f"{age:.1f} days ago ({run.details.get('file', '?')})", threshold, step)


def check_audit_errors() -> Check:
    since = timezone.now() - timedelta(hours=24)
    errors = AuditLog.objects.filter(severity=Severity.ERROR, created_at__gte=since)
    count = errors.count()
    if not count:
        return ok("audit_errors", "0 in the last 24 h", "0")
    latest = errors.order_by("-created_at").first()
    return Check(
        "audit_errors",
        Level.WARN,
        f"{count} in the last 24 h (latest {latest.action} {latest.target})",
        "0",
        "runbooks/high-error-rate.md: the admin's audit log, filtered on severity error",
    )


def check_bots() -> Check:
    behind = Bot.objects.desired_running().exclude(status__in=[Status.RUNNING, Status.STARTING])
    failed = sorted(behind.filter(status=Status.ERROR).values_list("slug", flat=True))
    others = sorted(behind.exclude(status=Status.ERROR).values_list("slug", flat=True))
    threshold = "all bots desired running are running"
    if failed:
        return Check(
            "bots",
            Level.CRIT,
            f"{len(failed)} in error ({', '.join(failed[:5])}), {len(others)} more not running",
            threshold,
            "read each bot's last_error in the admin, fix the cause, then start it again",
        )
    if others:
        return Check(
            "bots",
            Level.WARN,
            f"{len(others)} desired running but not running ({', '.join(others[:5])})",
            threshold,
            "check the workers and the reconcile schedule; the bot's last_error in the admin",
        )
    return ok("bots", f"{Bot.objects.desired_running().count()} desired running, all running", threshold)


# name -> (check, reads the database)
CHECKS: dict[str, tuple[Callable[[], Check], bool]] = {
    "web": (check_web, False),
    "database": (check_database, True),
    "db_connections": (check_db_connections, True),
    "slow_queries": (check_slow_queries, True),
    "idle_in_transaction": (check_idle_in_transaction, True),
    "redis": (check_redis, False),
    "broker": (check_broker_reachable, False),
    "workers": (check_workers, False),
    "llm": (check_llm, True),
    "disk_root": (check_disk_root, False),
    "disk_backups": (check_disk_backups, False),
    "memory": (check_memory, False),
    "last_backup": (check_last_backup, True),
    "last_restore_check": (check_last_restore_check, True),
    "audit_errors": (check_audit_errors, True),
    "bots": (check_bots, True),
}


def _in_thread(name: str, fn: Callable[[], Check]):
    def call() -> Check:
        return fn()

    call.__name__ = f"diagnose_{name}"
    return run_in_thread(call)


def _collect(name: str, future, deadline: float) -> Check:
    try:
        return future.result(timeout=max(0.0, deadline - time.monotonic()))
    except TimeoutError:
        return Check(name, Level.CRIT, f"no answer within {settings.DIAGNOSE_TIMEOUT:g} s", "answers", "investigate")
    except Exception as exc:  # noqa: BLE001 - a check that breaks is a finding too
        return Check(name, Level.WARN, f"check failed: {type(exc).__name__}: {exc}"[:300], "", "investigate")


def run_diagnose() -> list[Check]:
    """Every check, the database first so that its dependants can stand down if it is down."""
    timeout = settings.DIAGNOSE_TIMEOUT
    database = _collect("database", _in_thread("database", check_database), time.monotonic() + timeout)
    db_down = database.level == Level.CRIT
    futures = {
        name: _in_thread(name, fn)
        for name, (fn, needs_db) in CHECKS.items()
        if name != "database" and not (needs_db and db_down)
    }
    deadline = time.monotonic() + timeout
    results = []
    for name, (_fn, _needs_db) in CHECKS.items():
        if name == "database":
            results.append(database)
        elif name in futures:
            results.append(_collect(name, futures[name], deadline))
        else:
            results.append(Check(name, Level.WARN, "not checked: the database is unreachable", "", "fix the database"))
    return results


def overall(checks: list[Check]) -> Level:
    return max((c.level for c in checks), default=Level.OK)


def summary(checks: list[Check]) -> str:
    counts = {level: sum(1 for c in checks if c.level == level) for level in Level}
    return f"diagnose: {overall(checks).name} ({', '.join(f'{n} {level.name}' for level, n in counts.items())})"


# --- the Operations page's copy -----------------------------------------------------------
CACHE_KEY = "ops:diagnose"
RUNNING_KEY = "ops:diagnose:running"


@dataclass(frozen=True)
class Diagnosis:
    checks: list[Check]
    at: datetime  # when the checks ran

    @property
    def age_seconds(self) -> float:
        return max(0.0, (timezone.now() - self.at).total_seconds())


def _now() -> Diagnosis:
    return Diagnosis(run_diagnose(), timezone.now())


def cached_diagnose() -> Diagnosis:
    """run_diagnose()'s results at most DIAGNOSE_CACHE_SECONDS old, from Django's cache.

    Every check can take DIAGNOSE_TIMEOUT, one of them calls back into the web: page loads
    must not each run them. When the copy is stale one caller runs the checks (it won a
    cache.add); the others wait for its result, and run them themselves only if it never
    comes. With the cache down (Redis is one of the things diagnosed) every call runs them.
    """
    ttl = settings.DIAGNOSE_CACHE_SECONDS
    if ttl <= 0:
        return _now()
    give_up = time.monotonic() + 2 * settings.DIAGNOSE_TIMEOUT + 1
    while True:
        try:
            copy = cache.get(CACHE_KEY)
            if isinstance(copy, Diagnosis) and copy.age_seconds <= ttl:
                return copy
            won = cache.add(RUNNING_KEY, True, timeout=int(give_up - time.monotonic()) + 1)
        except Exception:  # noqa: BLE001 - any cache failure: answer from the checks themselves
            return _now()
        if won:
            copy = _now()
            try:
                cache.set(CACHE_KEY, copy, timeout=ttl)
                cache.delete(RUNNING_KEY)
            except Exception:  # noqa: BLE001,S110 - the results are good; the next load runs them again
                pass
            return copy
        if time.monotonic() > give_up:
            return _now()
        time.sleep(0.05)  # another request is running the checks: wait for its result
