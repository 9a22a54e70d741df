"""systemd units of web, workers and beat: they verify and carry the settings we rely on."""

from __future__ import annotations

import configparser
import re
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.install.units import directives

from .tools import DEPLOY, run

SYSTEMD = DEPLOY / "systemd"
UNITS = ["deia-web.service", "deia-worker.service", "deia-maintenance.service", "deia-beat.service"]


def unit(name: str) -> dict[str, list[str]]:
    """Directive -> values of a unit's sections (a directive may repeat)."""
    return directives(SYSTEMD / name)


def test_systemd_analyze_verify_passes(systemd_analyze: str, tmp_path: Path) -> None:
    # verify insists that ExecStart binaries exist; the app's are in /opt/deia, which a
    # test machine lacks. Verify copies whose /opt/deia paths point at stand-ins.
    stand_ins = tmp_path / "bin"
    stand_ins.mkdir()
    for binary in ("gunicorn", "celery"):
        (stand_ins / binary).write_text("#!/bin/sh\n")
        (stand_ins / binary).chmod(0o755)
    for name in UNITS:
        text = (SYSTEMD / name).read_text().replace("/opt/deia/.venv/bin/", f"{stand_ins}/")
        (tmp_path / name).write_text(text)
    result = run([systemd_analyze, "verify", *(str(tmp_path / n) for n in UNITS)], cwd=tmp_path)
    # verify exits 0 on unknown keys and bad values; any complaint is a failure here.
    assert result.returncode == 0 and not result.stderr.strip() and not result.stdout.strip(), (
        result.stdout + result.stderr
    )


def test_the_stand_in_rewrite_keeps_every_exec_path_absolute() -> None:
    for name in UNITS:
        for key, values in unit(name).items():
            if key.startswith("Service.Exec"):
                for value in values:
                    assert value.lstrip("-+!@:").startswith("/"), (name, key, value)


@pytest.mark.parametrize("name", UNITS)
def test_each_unit_restarts_on_failure_with_limits_env_and_a_dedicated_user(name: str) -> None:
    u = unit(name)
    assert u["Service.Restart"] == ["on-failure"]
    assert u["Service.LimitNOFILE"] == ["65536"]
    assert u["Service.EnvironmentFile"] == ["/etc/deia/deia.env"]
    # Log lines carry their syslog priority, which journald reads (journalctl -p err works).
    assert "LOG_SYSLOG_PREFIX=true" in u["Service.Environment"]
    assert u["Service.SyslogLevelPrefix"] == ["true"]
    assert u["Service.User"] == ["deia"] and u["Service.Group"] == ["deia"]
    assert u["Service.WorkingDirectory"] == ["/opt/deia"]
    assert u["Install.WantedBy"] == ["multi-user.target"]


def test_web_runs_gunicorn_with_the_shared_config_and_a_wiped_tmpfs_metrics_dir() -> None:
    u = unit("deia-web.service")
    assert u["Service.ExecStart"] == [
        "/opt/deia/.venv/bin/gunicorn -c /opt/deia/deploy/gunicorn.conf.py deia.asgi:application"
    ]
    assert "deia/metrics" in u["Service.RuntimeDirectory"][0].split()
    assert "Service.RuntimeDirectoryPreserve" not in u, "the metrics dir must not survive a stop"
    assert "PROMETHEUS_MULTIPROC_DIR=/run/deia/metrics" in u["Service.Environment"]
    assert any("/run/deia/metrics" in v and "-delete" in v for v in u["Service.ExecStartPre"])


def test_celery_units_run_their_queues() -> None:
    worker = unit("deia-worker.service")["Service.ExecStart"][0]
    assert re.search(r"celery -A deia worker --queues bots,host\.%H\b", worker)
    assert unit("deia-worker.service")["Service.KillMode"] == ["process"], "a worker restart must not kill bots"
    maintenance = unit("deia-maintenance.service")["Service.ExecStart"][0]
    assert "--queues maintenance" in maintenance and "--concurrency 1" in maintenance
    beat = unit("deia-beat.service")["Service.ExecStart"][0]
    assert "beat -S django_celery_beat.schedulers:DatabaseScheduler" in beat


def test_env_example_parses_and_leaves_the_multiprocess_dir_to_the_web_unit() -> None:
    parser = configparser.ConfigParser()
    parser.optionxform = str
    parser.read_string("[env]\n" + (SYSTEMD / "deia.env.example").read_text())
    env = parser["env"]
    # Shared by every unit and by operators' manage.py commands: the metrics directory
    # belongs to gunicorn alone (deia-web.service sets it).
    assert "PROMETHEUS_MULTIPROC_DIR" not in env
    assert "Environment=PROMETHEUS_MULTIPROC_DIR=/run/deia/metrics" in (SYSTEMD / "deia-web.service").read_text()
    assert env["BACKUP_DIR"] == "/var/backups/deia"
    assert "SECRET_KEY" not in env, "the example reads the secret key from a file"


def test_the_example_runs_redis_with_a_password_and_the_docs_set_requirepass() -> None:
    parser = configparser.ConfigParser(interpolation=None)
    parser.optionxform = str
    parser.read_string("[env]\n" + (SYSTEMD / "deia.env.example").read_text())
    url = urlsplit(parser["env"]["REDIS_URL"])
    assert url.scheme == "redis" and url.password and not url.username
    guide = (DEPLOY.parent / "docs" / "OPS_BUNDLE.md").read_text()
    assert "requirepass" in guide and f"redis://:{url.password}@" in guide


# `systemd-analyze security` exposure (0 best, 10 worst) of each unit as shipped: a change
# that weakens a unit fails here. deia-web must stay at or below 3.0 whatever else changes.
EXPOSURE_MAX = {
    "deia-web.service": 1.4,
    "deia-worker.service": 1.4,
    "deia-maintenance.service": 1.4,
    "deia-beat.service": 1.4,
}
WEB_EXPOSURE_LIMIT = 3.0


def exposure(systemd_analyze: str, name: str, cwd: Path) -> float:
    result = run([systemd_analyze, "security", "--offline=true", "--no-pager", str(SYSTEMD / name)], cwd=cwd)
    found = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", result.stdout + result.stderr)
    assert found, result.stdout + result.stderr
    return float(found.group(1))


@pytest.mark.parametrize("name", UNITS)
def test_each_unit_is_no_more_exposed_than_recorded(systemd_analyze: str, name: str, tmp_path: Path) -> None:
    score = exposure(systemd_analyze, name, tmp_path)
    assert score <= EXPOSURE_MAX[name], f"{name}: exposure {score} > {EXPOSURE_MAX[name]}"
    if name == "deia-web.service":
        assert score <= WEB_EXPOSURE_LIMIT


@pytest.mark.parametrize("name", UNITS)
def test_each_unit_carries_the_hardening_the_issue_asks_for(name: str) -> None:
    u = unit(name)
    assert u["Service.ProtectSystem"] == ["strict"]
    assert "/var/lib/deia" in u["Service.ReadWritePaths"][0].split()
    for directive in ("PrivateTmp", "NoNewPrivileges", "PrivateDevices", "ProtectHome"):
        assert u[f"Service.{directive}"] == ["yes"], directive
    assert u["Service.CapabilityBoundingSet"] == [""]
    assert u["Service.RestrictAddressFamilies"] == ["AF_UNIX AF_INET AF_INET6"]
    assert u["Service.UMask"] == ["0027"]
    assert u["Service.MemoryMax"] and u["Service.TasksMax"]


def test_only_the_maintenance_worker_writes_backups() -> None:
    for name in UNITS:
        writable = unit(name)["Service.ReadWritePaths"][0].split()
        assert ("/var/backups/deia" in writable) is (name == "deia-maintenance.service"), name
