"""Fixtures for the ops bundle checks: the tools, a throwaway Prometheus and Alertmanager.

A missing tool (promtool, amtool, prometheus, systemd-analyze) fails the test; it is
never skipped. `make test` installs Debian's prometheus and prometheus-alertmanager.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from .tools import DEPLOY, free_port, require_tool, wait_until_ready


@pytest.fixture(scope="session")
def promtool() -> str:
    return require_tool("promtool")


@pytest.fixture(scope="session")
def amtool() -> str:
    return require_tool("amtool")


@pytest.fixture(scope="session")
def systemd_analyze() -> str:
    return require_tool("systemd-analyze")


def serve(name: str, args: list[str], workdir: Path, request: pytest.FixtureRequest) -> str:
    """Start a Prometheus-family server (`args` after its binary) on a free loopback port.

    Returns its URL once /-/ready answers; the finalizer stops it and removes `workdir`.
    """
    port = free_port()
    log_path = workdir / f"{name}.log"
    log = log_path.open("w")
    proc = subprocess.Popen(
        [require_tool(name), *args, f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"],
        stdout=log,
        stderr=subprocess.STDOUT,
    )

    def stop() -> None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
        shutil.rmtree(workdir, ignore_errors=True)

    request.addfinalizer(stop)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_ready(f"{url}/-/ready", proc)
    except Exception:
        log.flush()
        raise AssertionError(f"{name} did not start:\n" + log_path.read_text()) from None
    return url


@pytest.fixture(scope="session")
def prometheus_url(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> str:
    """A real, empty Prometheus on a free loopback port, for parsing queries."""
    workdir = tmp_path_factory.mktemp("prometheus")
    config = workdir / "prometheus.yml"
    config.write_text("global:\n  scrape_interval: 15s\nscrape_configs: []\n")
    return serve("prometheus", [f"--config.file={config}", f"--storage.tsdb.path={workdir / 'data'}"], workdir, request)


@pytest.fixture
def alertmanager_url(tmp_path: Path, request: pytest.FixtureRequest) -> str:
    """A real Alertmanager with the shipped configuration, on a free loopback port, no cluster.

    Its receivers fail to deliver (no secrets, no network); the API still shows which
    alerts are active and which are inhibited.
    """
    config = DEPLOY / "alertmanager" / "alertmanager.yml"
    args = [f"--config.file={config}", f"--storage.path={tmp_path / 'data'}", "--cluster.listen-address="]
    return serve("prometheus-alertmanager", args, tmp_path, request)
