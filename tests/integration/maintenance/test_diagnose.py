"""`manage.py diagnose`: the runbooks' checks, against real services and real failures."""

from __future__ import annotations

import json
import subprocess
import threading
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from celery import Celery
from django.utils import timezone

from bots.models import Backend, Bot, DesiredState, Status
from deia.audit import audit
from ops import maintenance
from ops.diagnose import (
    Level,
    check_audit_errors,
    check_bots,
    check_last_backup,
    check_last_restore_check,
    check_llm,
    check_slow_queries,
    run_diagnose,
)
from ops.models import MaintenanceRun
from tests.support.procs import PYTHON, ROOT, free_port, wait_for

pytestmark = pytest.mark.django_db(transaction=True)


def diagnose(env: dict[str, str]) -> tuple[int, dict]:
    done = subprocess.run(
        [PYTHON, "manage.py", "diagnose", "--json"], env=env, cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    try:
        return done.returncode, json.loads(done.stdout)
    except ValueError:
        raise AssertionError(f"diagnose printed no JSON: {done.stdout}\n{done.stderr}") from None


@pytest.fixture
def web_health():
    """A stand-in web app answering /health, for tests where the web is not the subject."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b'{"status": "ok"}')

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    server.server_close()


def test_an_unreachable_database_is_one_crit_line_and_exit_2(child_env, web_health):
    env = {
        **child_env,
        "DATABASE_URL": f"postgres://deia:deia@127.0.0.1:{free_port()}/deia",
        "DIAGNOSE_WEB_URL": web_health,
        "DIAGNOSE_TIMEOUT": "3",
    }
    code, report = diagnose(env)
    assert code == 2 and report["status"] == "CRIT"
    levels = {c["name"]: c for c in report["checks"]}
    assert levels["database"]["level"] == "CRIT"
    assert "Connection refused" in levels["database"]["value"]
    assert levels["database"]["next_step"].startswith("runbooks/postgres-down.md")
    assert [c["name"] for c in report["checks"] if c["level"] == "CRIT"] == ["database"]
    assert levels["last_backup"]["value"].startswith("not checked")
    assert levels["web"]["level"] == "OK"


def test_a_healthy_stack_is_all_ok_and_exit_0(child_env, gunicorn, redis_server, maintenance_worker, settings):
    # A Redis of our own, configured as the runbook asks (maxmemory and an evicting policy).
    redis_url = redis_server("--maxmemory", "64mb", "--maxmemory-policy", "volatile-lru", "--save", "")
    env = {**child_env, "REDIS_URL": redis_url}
    env.pop("CELERY_BROKER_URL", None)
    maintenance_worker(env, name="diag")
    web = gunicorn(workers=1, REDIS_URL=redis_url)
    # An app of its own that must not become the current one (shared tasks would follow it).
    pinger = Celery(broker=redis_url, set_as_current=False)
    try:
        wait_for(lambda: pinger.control.ping(timeout=0.5), timeout=60, what="the worker to answer a ping")
        # The worker runs maintenance tasks from their own queue, recorded like any run.
        pinger.send_task("ops.tasks.db_report", queue="maintenance")
        run = wait_for(
            lambda: MaintenanceRun.objects.filter(job="db_report", actor="celery").exclude(status="running").first(),
            timeout=30,
            what="the worker's db_report run",
        )
        assert run.status == "ok" and run.host
    finally:
        pinger.close()
    settings.BACKUP_DIR = Path(env["BACKUP_DIR"])
    assert maintenance.run("backup", actor="test").status == "ok"
    assert maintenance.run("verify_backup", actor="test").status == "ok"

    code, report = diagnose({**env, "DIAGNOSE_WEB_URL": web})

    not_ok = [c for c in report["checks"] if c["level"] != "OK"]
    assert not_ok == [] and code == 0
    names = [c["name"] for c in report["checks"]]
    assert {"web", "database", "db_connections", "redis", "broker", "workers", "llm", "memory"} <= set(names)
    assert {"disk_root", "disk_backups", "last_backup", "last_restore_check", "audit_errors", "bots"} <= set(names)
    assert "diag@" in next(c["value"] for c in report["checks"] if c["name"] == "workers")


def test_the_text_output_is_one_line_per_check_and_a_summary(child_env, web_health):
    env = {**child_env, "DIAGNOSE_WEB_URL": web_health, "DIAGNOSE_TIMEOUT": "2"}
    done = subprocess.run([PYTHON, "manage.py", "diagnose"], env=env, cwd=ROOT, capture_output=True, text=True)
    lines = done.stdout.strip().splitlines()
    assert len(lines) == len(run_diagnose()) + 1
    assert lines[-1].startswith("diagnose: ")
    assert all(line.split()[0] in ("OK", "WARN", "CRIT") for line in lines[:-1])
    # No backup was ever taken here: critical, with the next step on the line.
    backup_line = next(line for line in lines if line.split()[1] == "last_backup")
    assert backup_line.startswith("CRIT") and "next: manage.py backup" in backup_line
    assert done.returncode == 2


def test_the_age_of_the_last_backup_and_restore_check_is_graded():
    assert check_last_backup().level == Level.CRIT
    assert check_last_restore_check().level == Level.WARN
    now = timezone.now()
    MaintenanceRun.objects.create(
        job="backup", status="ok", started_at=now - timedelta(hours=30), finished_at=now - timedelta(hours=30)
    )
    assert check_last_backup().level == Level.CRIT
    MaintenanceRun.objects.create(job="backup", status="ok", started_at=now, finished_at=now, details={"file": "x"})
    assert check_last_backup().level == Level.OK
    MaintenanceRun.objects.create(job="verify_backup", status="ok", started_at=now, finished_at=now)
    assert check_last_restore_check().level == Level.OK
    MaintenanceRun.objects.create(job="verify_backup", status="failed", started_at=now, finished_at=now, summary="bad")
    assert check_last_restore_check().level == Level.CRIT


def test_audit_errors_and_bots_behind_their_desired_state_are_reported():
    assert check_audit_errors().level == Level.OK
    audit("bot.start_error", actor="celery", target="support")
    result = check_audit_errors()
    assert result.level == Level.WARN and "bot.start_error support" in result.value
    bot = Bot.objects.create(name="A", slug="a", backend=Backend.ECHO, desired_state=DesiredState.RUNNING)
    assert check_bots().level == Level.WARN
    Bot.objects.filter(pk=bot.pk).update(status=Status.ERROR)
    assert check_bots().level == Level.CRIT


def test_audit_errors_count_failures_by_severity_not_by_name():
    audit("bot.crash", actor="reconcile", target="support")  # a warning: restarted after backoff
    audit("bot.stop_denied", actor="alice", target="support")
    assert check_audit_errors().level == Level.OK
    audit("maintenance.backup_error", actor="celery", target="backup")
    result = check_audit_errors()
    assert result.level == Level.WARN
    assert result.value.startswith("1 in the last 24 h (latest maintenance.backup_error backup)")


def test_a_query_running_over_the_threshold_is_reported_with_its_pid(settings, pg_session):
    settings.SLOW_QUERY_SECONDS = 0.2
    busy = pg_session(name="deia-test-busy")
    pid = busy.execute("SELECT pg_backend_pid()").fetchone()[0]
    thread = threading.Thread(target=lambda: busy.execute("SELECT pg_sleep(2)"), daemon=True)
    thread.start()
    result = wait_for(lambda: (r := check_slow_queries()).level == Level.WARN and r, what="the slow query")
    assert f"pid {pid}" in result.value and f"cancel_query {pid}" in result.next_step
    thread.join(5)


def test_the_health_report_records_the_checks_and_fails_on_a_critical(settings, web_health):
    settings.DIAGNOSE_WEB_URL = web_health
    run = maintenance.run("health_report", actor="test")  # no backup yet: critical
    run.refresh_from_db()
    assert run.status == "failed" and "CRIT last_backup" in run.summary
    assert {c["name"] for c in run.details["checks"]} >= {"database", "last_backup"}


def test_the_llm_check_finds_each_ollama_bots_model_or_says_which_is_missing(settings, fake_ollama):
    settings.OLLAMA_URL = fake_ollama.url
    assert check_llm().level == Level.OK  # no ollama bot: nothing to ask
    Bot.objects.create(name="A", slug="a", backend=Backend.OLLAMA, model_name="llama3.2")  # means :latest
    assert check_llm().level == Level.OK
    Bot.objects.create(name="B", slug="b", backend=Backend.OLLAMA, model_name="mistral:7b")
    result = check_llm()
    assert result.level == Level.WARN and "b: mistral:7b" in result.value and "ollama pull" in result.next_step
    settings.OLLAMA_URL = f"http://127.0.0.1:{free_port()}"
    assert check_llm().level == Level.CRIT


def test_the_llm_check_finds_an_openai_bots_missing_model_in_the_servers_list(settings, fake_ollama):
    settings.OPENAI_URL = f"{fake_ollama.url}/v1"
    Bot.objects.create(name="A", slug="a", backend=Backend.OPENAI, model_name="llama3.2")
    assert check_llm().level == Level.OK
    Bot.objects.create(name="B", slug="b", backend=Backend.OPENAI, model_name="qwen2:7b")

    result = check_llm()

    assert result.level == Level.WARN and "b: qwen2:7b" in result.value and "a: " not in result.value
    assert "OpenAI-compatible server" in result.next_step
    assert [r.path for r in fake_ollama.requests] == ["/v1/models"] * 3
    fake_ollama.models = ["llama3.2", "qwen2:7b"]
    assert check_llm().level == Level.OK
    settings.OPENAI_URL = f"http://127.0.0.1:{free_port()}/v1"
    down = check_llm()
    assert down.level == Level.CRIT and "OpenAI-compatible server" in down.value and "$OPENAI_URL" in down.next_step


def test_diagnose_reports_an_openai_bot_whose_model_the_server_does_not_list(child_env, web_health, fake_ollama):
    Bot.objects.create(name="Compat", slug="compat", backend=Backend.OPENAI, model_name="mistral:7b")
    env = {**child_env, "OPENAI_URL": f"{fake_ollama.url}/v1", "DIAGNOSE_WEB_URL": web_health, "DIAGNOSE_TIMEOUT": "3"}

    code, report = diagnose(env)

    llm = next(c for c in report["checks"] if c["name"] == "llm")
    assert llm["level"] == "WARN" and "compat: mistral:7b" in llm["value"], llm
    assert code == 2  # no backup recorded here: that one is critical
