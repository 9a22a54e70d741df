"""deploy/install.sh brings up a working system, and a second run changes nothing.

The script runs for real (user, code, venv, database, secrets, setup, units, Prometheus,
Alertmanager, exporters) into a scratch prefix, against the test PostgreSQL and a Redis of
its own (with the redis step's memory settings), its apt, systemd, redis and pgmonitor steps
skipped. There is no systemd here: each unit the install wrote is started the way systemd
would start it (tests/install/units.py), as its User, and the system is then used over real
HTTPS through the installed nginx site (as www-data, with the install's certificate): the
static files setup collected, /health, an admin sign-in, a bot created in the admin, started
and chatting through the API, Prometheus (Debian's unit, the installed /etc/default/prometheus)
scraping the web and the bot, Alertmanager (Debian's unit, the installed ARGS) serving the
shipped routing, and the checks docs/OPS_BUNDLE.md gives the operator, run against it.
"""

from __future__ import annotations

import os
import pwd
import re
import shutil
import signal
import ssl
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import redis
from django.conf import settings

from bots.lifecycle.process import pid_alive
from tests.install.units import Unit, as_user, command, environment, prepare_directories, run_pre
from tests.support.procs import ROOT, Proc, free_port, http_ok, port_is_open, wait_for

pytestmark = pytest.mark.services

INSTALL = ROOT / "deploy" / "install.sh"
OPS_BUNDLE = ROOT / "docs" / "OPS_BUNDLE.md"
# A bash block, the marker line before it if any, the expectations after it (tests/docs' conventions).
CHECK_BLOCK = re.compile(
    r"(?:\*Not run by the docs test: (?P<reason>[^*]+)\*\s*)?"
    r"```bash\n(?P<body>.*?)```\n(?P<expect>(?:<!-- expect: [^\n]+ -->\n)*)",
    re.S,
)
DEBIAN_UNITS = Path("/lib/systemd/system")
NGINX = "/usr/sbin/nginx"  # Debian's, as its nginx.service runs it
SERVER_NAME = "deia.test"
SKIP = "apt systemd redis pgmonitor"
DEIA_UNITS = ("deia-web", "deia-worker", "deia-maintenance", "deia-beat")
# Paths the install writes; in a prefixed install no file may name one outside the prefix.
ROOTED = ("/opt/deia", "/etc/deia", "/var/lib/deia", "/var/log/deia", "/var/backups/deia", "/run/deia")


@dataclass
class Installed:
    prefix: Path
    env: dict[str, str]
    ports: dict[str, int]
    db_name: str
    first_output: str

    def run(self) -> subprocess.CompletedProcess:
        return subprocess.run(["bash", str(INSTALL)], env=self.env, capture_output=True, text=True, timeout=240)

    def path(self, absolute: str) -> Path:
        return Path(f"{self.prefix}{absolute}")


def psql_admin(sql: str) -> str:
    port = str(settings.DATABASES["default"]["PORT"] or 5432)
    return subprocess.run(
        ["runuser", "-u", "postgres", "--", "psql", "-p", port, "-v", "ON_ERROR_STOP=1", "-qAtX", "-c", sql],
        capture_output=True,
        text=True,
        check=True,
    ).stdout


def prefix_processes(prefix: Path) -> list[int]:
    """Processes running from the prefix (units, bot runners, Prometheus, Alertmanager)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cwd = os.readlink(entry / "cwd")
            cmdline = (entry / "cmdline").read_bytes().decode(errors="replace")
        except OSError:
            continue
        if cwd.startswith(str(prefix)) or str(prefix) in cmdline:
            found.append(int(entry.name))
    return found


def kill_prefix_processes(prefix: Path) -> None:
    for pid in prefix_processes(prefix):
        try:
            os.kill(pid, 9)
        except ProcessLookupError:
            pass
    wait_for(lambda: not any(pid_alive(p) for p in prefix_processes(prefix)), timeout=15, what="prefix processes gone")


def own_redis(folder: Path) -> tuple[Proc, str]:
    """A Redis of the install's own, with the settings the redis step appends (redis-maxmemory.conf)."""
    lines = (ROOT / "deploy" / "exporters" / "redis-maxmemory.conf").read_text().splitlines()
    args = [word for line in lines if line and not line.startswith("#") for word in ("--" + line).split(None, 1)]
    port = free_port()
    argv = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--dir", str(folder), "--save", "", *args]
    proc = Proc(argv, {}, folder / "redis.log", cwd=folder)
    client = redis.Redis(port=port, socket_connect_timeout=0.5)
    try:
        wait_for(lambda: proc.running() and client.ping(), timeout=15, what=f"redis-server on {port}")
    finally:
        client.close()
    return proc, f"redis://127.0.0.1:{port}/0"


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Installed]:
    if os.geteuid() != 0:
        pytest.fail("install.sh runs as root (useradd, chown, runuser postgres); run make test as root", pytrace=False)
    db = settings.DATABASES["default"]
    # Its own database and role, named after the suite's database (parallel suites differ).
    db_name = re.sub(r"[^a-z0-9_]", "_", f"{db['NAME']}_install".lower())
    # Not pytest's tmp_path: that lives in a root-only folder the deia and prometheus users cannot enter.
    prefix = Path(tempfile.mkdtemp(prefix="deia-install-"))
    prefix.chmod(0o755)
    ports = {name: free_port() for name in ("web", "prometheus", "alertmanager", "node", "postgres", "redis")}
    env = {
        "PATH": os.environ["PATH"],
        "LANG": "C.UTF-8",
        "DEIA_PREFIX": str(prefix),
        "DEIA_SKIP": SKIP,
        "DEIA_DB_NAME": db_name,
        "DEIA_DB_USER": db_name,
        "DEIA_DB_HOST": db["HOST"] or "127.0.0.1",
        "DEIA_DB_PORT": str(db["PORT"] or 5432),
        "DEIA_REDIS_URL": "",
        "DEIA_SERVER_NAME": SERVER_NAME,
        "DEIA_BOT_PORTS": os.environ.get("BOT_PORT_RANGE", "18001-18199"),
        "DEIA_WEB_PORT": str(ports["web"]),
        "DEIA_PROMETHEUS_PORT": str(ports["prometheus"]),
        "DEIA_ALERTMANAGER_PORT": str(ports["alertmanager"]),
        "DEIA_NODE_EXPORTER_PORT": str(ports["node"]),
        "DEIA_POSTGRES_EXPORTER_PORT": str(ports["postgres"]),
        "DEIA_REDIS_EXPORTER_PORT": str(ports["redis"]),
    }
    installation = Installed(prefix, env, ports, db_name, "")
    broker, env["DEIA_REDIS_URL"] = own_redis(tmp_path_factory.mktemp("redis"))
    try:
        first = installation.run()
        assert first.returncode == 0, first.stdout + first.stderr
        installation.first_output = first.stdout
        yield installation
    finally:
        kill_prefix_processes(prefix)
        psql_admin(f"DROP DATABASE IF EXISTS {db_name} WITH (FORCE)")
        psql_admin(f"DROP ROLE IF EXISTS {db_name}")
        # The venv is thousands of files: rm(1) is quicker at it than shutil.rmtree.
        subprocess.run(["rm", "-rf", "--one-file-system", str(prefix)], check=True)
        broker.stop()


def test_a_second_run_succeeds_changes_nothing_and_keeps_the_secrets(installed: Installed) -> None:
    etc = installed.path("/etc/deia")
    before = {name: (etc / name).read_text() for name in ("secret_key", "db_password", "admin_password", "deia.env")}
    assert "generated" in installed.first_output and "made PostgreSQL database" in installed.first_output
    second = installed.run()
    assert second.returncode == 0, second.stdout + second.stderr
    assert {name: (etc / name).read_text() for name in before} == before
    changes = [line for line in second.stdout.splitlines() if re.match(r"install: (wrote|made|generated|copied)", line)]
    assert changes == [], changes
    assert "admin 'admin' present" in second.stdout
    # Owner-only secrets; the env file readable by the units' group.
    assert (etc / "secret_key").stat().st_mode & 0o777 == 0o600
    assert pwd.getpwuid((etc / "secret_key").stat().st_uid).pw_name == "deia"
    assert (etc / "db_password").stat().st_mode & 0o777 == 0o600
    assert (etc / "deia.env").stat().st_mode & 0o777 == 0o640


@pytest.mark.parametrize(
    ("change", "message"),
    [
        # The venv is there already; the check of the Python it is made with fails.
        ({"DEIA_PYTHON": "/bin/false", "DEIA_SKIP": f"{SKIP} secrets"}, "/bin/false is not Python 3.11"),
        ({"DEIA_SKIP": "apt sytemd"}, "DEIA_SKIP: no step 'sytemd'"),
    ],
    ids=["bad-python", "misspelt-step"],
)
def test_a_failing_step_stops_with_one_line_and_a_non_zero_exit(installed: Installed, change, message) -> None:
    result = subprocess.run(
        ["bash", str(INSTALL)], env={**installed.env, **change}, capture_output=True, text=True, timeout=120
    )
    assert result.returncode != 0
    errors = result.stderr.strip().splitlines()
    assert len(errors) == 1 and errors[0].startswith("install: ERROR: ") and message in errors[0], result.stderr


def test_every_written_file_stays_inside_the_prefix(installed: Installed) -> None:
    outside = []
    for path in installed.path("/etc").rglob("*"):
        if not path.is_file() or path.suffix in (".pem", ".key"):
            continue
        text = path.read_text(errors="replace")
        outside += [f"{path}: {root}" for root in ROOTED if re.search(rf"(^|[^\w./-]){re.escape(root)}", text)]
    assert outside == []
    assert installed.path("/etc/prometheus/alertmanager.yml").is_file()
    assert installed.path("/etc/prometheus/alertmanager_templates/deia.tmpl").is_file()
    args = installed.path("/etc/default/prometheus-alertmanager").read_text()
    assert f"--config.file={installed.prefix}/etc/prometheus/alertmanager.yml" in args
    assert f"--web.listen-address=127.0.0.1:{installed.ports['alertmanager']}" in args


class Session:
    """A browser on the installed nginx site (https, its name, its self-signed certificate), cookies kept."""

    def __init__(self, base: str, certificate: Path) -> None:
        self.base = base
        self.cookies: dict[str, str] = {}
        # The certificate the install made is the one served; it names the site, not 127.0.0.1.
        trust = ssl.create_default_context(cafile=str(certificate))
        trust.check_hostname = False
        self.client = httpx.Client(base_url=base, timeout=30, follow_redirects=False, verify=trust)

    def request(self, method: str, path: str, **kwargs) -> httpx.Response:
        headers = {
            "Host": SERVER_NAME,
            "Referer": f"https://{SERVER_NAME}{path}",
            **kwargs.pop("headers", {}),
        }
        if self.cookies:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        if method != "GET" and "csrftoken" in self.cookies:
            headers["X-CSRFToken"] = self.cookies["csrftoken"]
        response = self.client.request(method, path, headers=headers, **kwargs)
        for header in response.headers.get_list("set-cookie"):
            name, _, rest = header.partition("=")
            self.cookies[name.strip()] = rest.split(";", 1)[0]
        return response

    def form(self, path: str, fields: dict[str, str]) -> httpx.Response:
        """GET a form, then POST it with its hidden fields (CSRF token, formsets) and `fields`."""
        page = self.request("GET", path)
        assert page.status_code == 200, (path, page.status_code, page.text[:300])
        hidden = dict(
            re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', page.text)
            + re.findall(r'<input type="hidden" value="([^"]*)" name="([^"]+)"', page.text)[::-1]
        )
        return self.request("POST", path, data={**hidden, **fields})


def documented_checks() -> list[tuple[str, list[str]]]:
    """The shell blocks of OPS_BUNDLE.md's "Checks after an install" a test can run, with their expectations."""
    text = OPS_BUNDLE.read_text()
    section = text[text.index("### Checks after an install") :]
    section = section[: section.index("\n## ", 1) if "\n## " in section else len(section)]
    checks = []
    for match in CHECK_BLOCK.finditer(section):
        if match["reason"] and "tests/install/test_install.py" not in match["reason"]:
            continue
        checks.append((match["body"], re.findall(r"<!-- expect: (.+) -->", match["expect"])))
    return checks


def run_the_documented_checks(installed: Installed) -> list[str]:
    """Each check block with the install's paths and ports; `deia-manage` as docs/runbooks/README.md has it."""
    prefix = installed.prefix
    prelude = (
        "set -eo pipefail\n"
        f"deia-manage() {{ runuser -u deia -- sh -c 'set -a; . {prefix}/etc/deia/deia.env; set +a; "
        f'cd {prefix}/opt/deia && exec .venv/bin/python manage.py "$@"\' deia-manage "$@"; }}\n'
    )
    places = {
        "http://127.0.0.1:8000": f"http://127.0.0.1:{installed.ports['web']}",
        "http://127.0.0.1:9090": f"http://127.0.0.1:{installed.ports['prometheus']}",
        "http://127.0.0.1:9093": f"http://127.0.0.1:{installed.ports['alertmanager']}",
        " /etc/": f" {prefix}/etc/",
        "=/etc/": f"={prefix}/etc/",
    }
    failures = []
    checks = documented_checks()
    assert len(checks) >= 4, checks
    for body, expect in checks:
        script = body
        for placeholder, value in places.items():
            script = script.replace(placeholder, value)
        done = subprocess.run(["bash", "-c", prelude + script], capture_output=True, text=True, timeout=120, cwd="/")
        missing = [r for r in expect if not re.search(r, done.stdout, re.M)]
        if done.returncode or missing:
            failures.append(f"{script}: exit {done.returncode}, missing {missing}\n{done.stdout}{done.stderr}")
    return failures


def start_nginx(installed: Installed, logs: Path, procs: list[Proc]) -> str:
    """Debian's nginx with the installed site, as www-data, on scratch loopback ports: its https URL."""
    site = installed.path("/etc/nginx/sites-enabled/deia").read_text()
    https_port, http_port = free_port(), free_port()
    site = re.sub(r"^\s*listen \[::\].*$", "", site, flags=re.M)
    site = site.replace("listen 80;", f"listen 127.0.0.1:{http_port};")
    site = site.replace("listen 443 ssl", f"listen 127.0.0.1:{https_port} ssl")
    site = re.sub(r"(access_log|error_log)\s+/var/log/nginx/(\S+);", rf"\1 {logs}/\2;", site)
    run = installed.path("/run/nginx-test")
    run.mkdir(mode=0o755, parents=True)
    shutil.chown(run, "www-data", "www-data")
    (run / "deia.conf").write_text(site)
    config = run / "nginx.conf"
    config.write_text(
        f"user www-data;\npid {run}/nginx.pid;\nerror_log {logs}/nginx-error.log;\ndaemon off;\nevents {{}}\n"
        f"http {{\n  include /etc/nginx/mime.types;\n  client_body_temp_path {run}/body;\n"
        f"  proxy_temp_path {run}/proxy;\n  include {run}/deia.conf;\n}}\n"
    )
    proc = Proc([NGINX, "-c", str(config), "-e", f"{logs}/nginx-error.log"], {}, logs / "nginx.log", cwd=run)
    procs.append(proc)
    wait_for(lambda: port_is_open(https_port) or not proc.running(), timeout=15, what="nginx")
    assert proc.running(), proc.output() + (logs / "nginx-error.log").read_text()
    return f"https://127.0.0.1:{https_port}"


def start_unit(unit_path: Path, prefix: Path, logs: Path, procs: list[Proc]) -> Proc:
    unit = Unit.read(unit_path)
    env = environment(unit, prefix)
    cwd = Path(unit.get("WorkingDirectory", "/"))
    prepare_directories(unit, prefix)
    run_pre(unit, env, cwd)
    proc = Proc(command(unit.get("ExecStart"), env), env, logs / f"{unit_path.stem}.log", cwd=cwd, **as_user(unit))
    procs.append(proc)
    return proc


def test_the_installed_units_bring_up_a_system_that_answers(installed: Installed, tmp_path: Path, fake_ollama) -> None:
    prefix = installed.prefix
    base = f"http://127.0.0.1:{installed.ports['web']}"
    procs: list[Proc] = []
    try:
        units = sorted(installed.path("/etc/systemd/system").glob("deia-*.service"))
        assert {u.stem for u in units} == set(DEIA_UNITS)
        for unit in units:
            assert Unit.read(unit).user == "deia"
        # An operator's edits of deia.env (the install keeps them): two web workers on this small
        # test host, and the LLM the checks' `diagnose` asks.
        with installed.path("/etc/deia/deia.env").open("a") as env_file:
            env_file.write(f"GUNICORN_WORKERS=2\nOLLAMA_URL={fake_ollama.url}\n")
        started = {unit.stem: start_unit(unit, prefix, tmp_path, procs) for unit in units}
        web = started["deia-web"]
        wait_for(lambda: http_ok(f"{base}/health") or not web.running(), timeout=60, what="deia-web /health")
        assert web.running(), web.output()[-3000:]
        health = httpx.get(f"{base}/health")
        assert health.status_code == 200, health.text
        # Every unit's processes run as deia.
        assert {pwd.getpwuid(os.stat(f"/proc/{p.pid}").st_uid).pw_name for p in procs} == {"deia"}

        # Through the installed nginx site: the static files setup collected, and the app.
        site = start_nginx(installed, tmp_path, procs)
        browser = Session(site, installed.path(f"/etc/ssl/certs/{SERVER_NAME}.pem"))
        css = browser.request("GET", "/static/admin/css/base.css")
        assert css.status_code == 200 and "text/css" in css.headers["content-type"], css.status_code
        assert browser.request("GET", "/health").json() == {"status": "ok"}
        assert browser.request("GET", "/metrics").status_code == 404, "the site refuses /metrics"

        # Sign in to the admin with the password the install generated.
        password = installed.path("/etc/deia/admin_password").read_text().strip()
        login = browser.form("/admin/login/?next=/admin/", {"username": "admin", "password": password})
        assert login.status_code == 302 and login.headers["location"] == "/admin/", login.text[:500]
        home = browser.request("GET", "/admin/")
        assert home.status_code == 200 and "Log out" in home.text

        # A bot made in the admin, started and chatting through the API (the worker spawns it).
        created = browser.form(
            "/admin/bots/bot/add/",
            {
                "name": "Install check",
                "slug": "install-check",
                "backend": "echo",
                "model_name": "echo",
                "system_prompt": "Repeat.",
                "_save": "Save",
            },
        )
        assert created.status_code == 302, created.text[-2000:]
        bot_id = next(b["id"] for b in browser.request("GET", "/api/bots").json() if b["slug"] == "install-check")
        start = browser.request("POST", f"/api/bots/{bot_id}/start")
        assert start.status_code in (200, 202), start.text

        def running() -> bool:
            return browser.request("GET", f"/api/bots/{bot_id}").json()["status"] == "running"

        wait_for(running, timeout=60, interval=0.3, what="the bot running (deia-worker)")
        chat = browser.request("POST", f"/api/bots/{bot_id}/messages", json={"message": "hello"})
        assert chat.status_code == 200 and "echo: hello" in chat.text, chat.text

        # Prometheus as Debian runs it, with the installed /etc/default/prometheus.
        prometheus = start_unit(DEBIAN_UNITS / "prometheus.service", prefix, tmp_path, procs)
        prom = f"http://127.0.0.1:{installed.ports['prometheus']}"

        def target_health(job: str) -> set[str]:
            targets = httpx.get(f"{prom}/api/v1/targets", timeout=5).json()["data"]["activeTargets"]
            return {t["health"] for t in targets if t["labels"]["job"] == job}

        wait_for(lambda: target_health("deia-web") == {"up"} or not prometheus.running(), timeout=45, interval=0.5)
        assert prometheus.running(), prometheus.output()[-3000:]
        assert target_health("deia-web") == {"up"}
        wait_for(lambda: target_health("deia-bots") == {"up"}, timeout=45, interval=0.5, what="the bot scraped")

        # Alertmanager as Debian runs it: the installed ARGS and /etc/prometheus/alertmanager.yml.
        alertmanager = start_unit(DEBIAN_UNITS / "prometheus-alertmanager.service", prefix, tmp_path, procs)
        am = f"http://127.0.0.1:{installed.ports['alertmanager']}"
        wait_for(lambda: http_ok(f"{am}/-/ready") or not alertmanager.running(), timeout=30, what="Alertmanager")
        assert alertmanager.running(), alertmanager.output()[-3000:]
        status = httpx.get(f"{am}/api/v2/status").json()
        assert 'alertname="Watchdog"' in status["config"]["original"]
        assert "receiver: heartbeat" in status["config"]["original"]
        assert pwd.getpwuid(os.stat(f"/proc/{alertmanager.pid}").st_uid).pw_name == "prometheus"
        # Prometheus sends its alerts to that Alertmanager.
        wait_for(
            lambda: httpx.get(f"{prom}/api/v1/alertmanagers").json()["data"]["activeAlertmanagers"],
            timeout=15,
            what="Prometheus' Alertmanager",
        )

        # The operator's checks of docs/OPS_BUNDLE.md, against this installation.
        failures = run_the_documented_checks(installed)
        assert not failures, "\n\n".join(failures)

        stop = browser.request("POST", f"/api/bots/{bot_id}/stop")
        assert stop.status_code in (200, 202), stop.text
        wait_for(lambda: not running(), timeout=30, interval=0.3, what="the bot stopped")
        for name, proc in started.items():
            assert proc.running(), f"{name} exited:\n{proc.output()[-3000:]}"
    finally:
        # All at once, as systemd stops them at shutdown: the graces overlap.
        for proc in procs:
            proc.signal(signal.SIGTERM)
        for proc in reversed(procs):
            proc.stop()
        kill_prefix_processes(prefix)


def test_behind_pgbouncer_the_env_step_sends_the_app_to_it_and_migrations_past_it(installed: Installed) -> None:
    env_file = installed.path("/etc/deia/deia.env")
    original = env_file.read_text()
    only_env = "apt user code venv secrets database redis setup units nginx prometheus alertmanager exporters"
    try:
        env_file.write_text(original + "DATABASE_POOLER=pgbouncer\n")
        result = subprocess.run(
            ["bash", str(INSTALL)],
            env={**installed.env, "DEIA_SKIP": f"{only_env} pgmonitor systemd", "DEIA_PGBOUNCER_PORT": "6499"},
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == 0, result.stdout + result.stderr
        lines = dict(line.split("=", 1) for line in env_file.read_text().splitlines() if re.match(r"[A-Z_]+=", line))
        port = installed.env["DEIA_DB_PORT"]
        assert lines["DATABASE_URL"].endswith(f"@127.0.0.1:6499/{installed.db_name}"), lines["DATABASE_URL"]
        assert lines["DATABASE_DIRECT_URL"].endswith(f":{port}/{installed.db_name}"), lines["DATABASE_DIRECT_URL"]
    finally:
        env_file.write_text(original)
