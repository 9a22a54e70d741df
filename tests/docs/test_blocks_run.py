"""Every shell block of README.md, docs/*.md and docs/runbooks/*.md runs against a live system.

The system is `docs_system` (tests/docs/conftest.py): gunicorn, a Celery bots worker with
one running echo bot, beat's reconcile (the reconcile ticker), PostgreSQL, a Redis of its
own, the fake Ollama and a real Prometheus scraping them with the shipped rules. The
shared fixtures are function-scoped, so one test runs every page's blocks on one system
and reports every failure at once.

How a block runs: `bash -c` with `set -eo pipefail` (every command of the block must
succeed, also inside a pipe), in the repository, after the blocks before it on its page
(the variables they set are kept, as in one terminal), with the bots worker's environment
(the "same environment as the services" the README asks for), after the placeholders and
production paths listed in substitutions() below are replaced by this system's values
(`sudo -u postgres psql` becomes psql on the test database as the app's role), and with
the two helpers the runbooks define (docs/runbooks/README.md) defined for this system:

- `deia-manage` runs `manage.py` with the venv's python (the page's definition goes
  through sudo and /etc/deia/deia.env, which a test machine has not);
- `promq` asks the test's Prometheus.

What the text says you will see is written next to the block as `<!-- expect: <regex> -->`
(tests/docs/pages.py); each is searched in the block's stdout. Blocks marked
`*Not run by the docs test: <reason>.*` are not run (their number per page is held by
test_markers.py). A block that stops the bot, freezes starts or leaves a slow query (as
some recovery steps do) is followed by putting the system back.

Every `promq '<expr>'`, in a block or in the prose, is then evaluated against the
Prometheus and must return data unless it carries `no data in the docs test: <reason>`.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.plugins.observability import prom_query
from tests.support.procs import PYTHON, ROOT, wait_for

from .conftest import DocsSystem
from .pages import PAGES, promql, shell_blocks

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]

BLOCK_TIMEOUT = 60
PRELUDE = """set -aeo pipefail
trap 'env -0 > "$DEIA_DOCS_STATE"' EXIT
deia-manage() { "$DEIA_PYTHON" manage.py "$@"; }
promq() { curl -s "$DEIA_PROMETHEUS_URL/api/v1/query" --data-urlencode "query=$1"; }
"""


def substitutions(system: DocsSystem) -> list[tuple[str, Callable[[], str]]]:
    """Placeholder or production value in the docs -> this system's value (computed per block)."""
    app = system.app

    def bot():
        app.bot.refresh_from_db()
        return app.bot

    web = app.web.removeprefix("http://")
    return [
        ("http://127.0.0.1:8000", lambda: app.web),
        ("sport = :8000", lambda: f"sport = :{web.rsplit(':', 1)[1]}"),
        ("http://127.0.0.1:9090", lambda: app.prometheus),
        ("http://127.0.0.1:11434", lambda: system.ollama),
        ("sudo -u postgres psql deia", lambda: 'psql "$DATABASE_URL"'),
        ("sudo -u postgres psql", lambda: 'psql "$DATABASE_URL"'),
        ("redis-cli", lambda: 'redis-cli -u "$REDIS_URL"'),
        ("/opt/deia/.venv/bin/", lambda: f"{ROOT}/.venv/bin/"),
        ("/var/backups/deia/db_<timestamp>.dump", lambda: str(system.backup)),
        ("/var/backups/deia", lambda: system.env["BACKUP_DIR"]),
        ("/var/log/deia", lambda: system.env["LOG_DIR"]),
        ("/var/lib/deia", lambda: system.env["DEIA_VAR_DIR"]),
        (
            "/etc/prometheus/prometheus.yml",
            lambda: f"{ROOT}/deploy/prometheus/prometheus.yml",
        ),  # what install.sh places
        ("/etc/prometheus/rules/deia-alerts.yml", lambda: f"{system.env['DEIA_VAR_DIR']}/deia-alerts.yml"),
        ("find / -xdev", lambda: f"find {Path(system.env['DEIA_VAR_DIR']).parent} -xdev"),  # / takes 10 s
        ("/api/bots/1/", lambda: f"/api/bots/{bot().pk}/"),
        ("/api/bot/1/", lambda: f"/api/bot/{bot().pk}/"),
        ("<bot>", lambda: bot().slug),
        ("<slug>", lambda: bot().slug),
        ("<id>", lambda: str(bot().pk)),
        ("<instance>", lambda: bot().address),
        ("<port>", lambda: str(bot().port)),
        ("<task>", lambda: "vacuum"),
        ("<mountpoint>", lambda: "/"),
        ("<pid>", lambda: str(system.slow_query_pid())),
    ]


def substitute(text: str, table: list[tuple[str, Callable[[], str]]]) -> str:
    for placeholder, value in table:
        if placeholder in text:
            text = text.replace(placeholder, value())
    return text


def put_back(system: DocsSystem) -> None:
    """Undo what a recovery step did to the system the next block expects: starts frozen, the bot stopped."""
    from bots.models import DesiredState, Status
    from deia.flags import starts_frozen

    system.end_slow_queries()
    if starts_frozen():
        system.manage("unfreeze_starts")
    bot = system.app.bot
    bot.refresh_from_db()
    if bot.desired_state != DesiredState.RUNNING:
        response = system.app.api.post(f"/api/bots/{bot.pk}/start")
        assert response.status_code == 202, response.text

    def running() -> bool:
        bot.refresh_from_db()
        return bot.status == Status.RUNNING

    wait_for(running, timeout=30, what=f"the bot running again (it is {bot.status})")


def run_block(script: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    """Run a block in its own session; at its deadline the whole session is killed, children included."""
    proc = subprocess.Popen(
        ["bash", "-c", PRELUDE + script],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        stdout, stderr = proc.communicate(timeout=BLOCK_TIMEOUT)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        stdout, stderr = proc.communicate()
        stderr += f"\n(killed after {BLOCK_TIMEOUT} s)"
    return subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr)


def check_queries(system: DocsSystem, table) -> list[str]:
    """Every promq expression parses; those not marked return data (rules may need a few evaluations)."""
    queries = [(q, substitute(q.expr, table)) for page in PAGES for q in promql(page)]
    failures: dict[str, str] = {}
    deadline = time.monotonic() + 40
    pending = queries
    while pending:
        failures = {}
        for query, expr in pending:
            try:
                result = prom_query(system.app.prometheus, expr)
            except AssertionError as exc:
                failures[query.where] = f"{query.where}: {expr}\n    -> rejected: {exc}"
                continue
            if not result and not query.no_data:
                failures[query.where] = f"{query.where}: {expr}\n    -> no data"
        pending = [(q, e) for q, e in pending if q.where in failures]
        if not pending or time.monotonic() > deadline:
            break
        time.sleep(1)
    return list(failures.values())


@pytest.mark.timeout(600)
def test_every_shell_block_of_the_docs_runs_and_says_what_the_text_says(docs_system: DocsSystem) -> None:
    table = substitutions(docs_system)
    failures = []
    env = {
        **docs_system.env,
        "DEIA_PYTHON": PYTHON,
        "DEIA_PROMETHEUS_URL": docs_system.app.prometheus,
        "DEIA_TOKEN": docs_system.app.api.headers["Authorization"].removeprefix("Token "),
    }
    env["TOKEN"] = env["DEIA_TOKEN"]
    ran = 0
    state = Path(docs_system.env["DEIA_VAR_DIR"]) / "docs-shell-state"
    env["DEIA_DOCS_STATE"] = str(state)
    for page in PAGES:
        session = dict(env)  # a page's blocks run one after the other, as in one terminal
        for block in shell_blocks(page):
            if block.marker:
                continue
            script = substitute(block.text, table)
            started = time.monotonic()
            state.unlink(missing_ok=True)
            done = run_block(script, session)
            if state.exists():  # the variables the block set (H=… in the README) stay for the next
                session = dict(line.split("=", 1) for line in state.read_text().split("\0") if "=" in line)
            ran += 1
            took = time.monotonic() - started
            print(f"{block}: exit {done.returncode} in {took:.1f} s")  # shown when the test fails
            problems = [] if done.returncode == 0 else [f"exit {done.returncode}"]
            problems += [f"no line matching {r!r}" for r in block.expect if not re.search(r, done.stdout, re.M)]
            if problems:
                failures.append(
                    f"{block} ({took:.1f} s): {'; '.join(problems)}\n--- ran:\n{script}--- stdout:\n"
                    f"{done.stdout[-2000:]}--- stderr:\n{done.stderr[-2000:]}"
                )
            try:
                put_back(docs_system)
            except AssertionError as exc:
                failures.append(f"{block}: could not put the system back after it: {exc}")
    assert ran, "no shell block was run"
    # After the blocks: the rules (evaluated every 30 s) have had their time.
    failures += check_queries(docs_system, table)
    assert not failures, f"{len(failures)} failing blocks or queries:\n\n" + "\n\n".join(failures)
