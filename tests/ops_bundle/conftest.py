"""Fixtures for the ops bundle checks: the tools, and a throwaway Prometheus.

A missing tool (promtool, amtool, prometheus, systemd-analyze) fails the test; it is
never skipped. `make test` installs Debian's prometheus and prometheus-alertmanager.
"""

from __future__ import annotations

import shutil
import subprocess

import pytest

from .tools import free_port, require_tool, wait_until_ready


@pytest.fixture(scope="session")
def promtool() -> str:
    return require_tool("promtool")


@pytest.fixture(scope="session")
def amtool() -> str:
    return require_tool("amtool")


@pytest.fixture(scope="session")
def systemd_analyze() -> str:
    return require_tool("systemd-analyze")


@pytest.fixture(scope="session")
def prometheus_url(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> str:
    """A real, empty Prometheus on a free loopback port, for parsing queries."""
    binary = require_tool("prometheus")
    workdir = tmp_path_factory.mktemp("prometheus")
    config = workdir / "prometheus.yml"
    config.write_text("global:\n  scrape_interval: 15s\nscrape_configs: []\n")
    port = free_port()
    log = (workdir / "prometheus.log").open("w")
    proc = subprocess.Popen(
        [
            binary,
            f"--config.file={config}",
            f"--storage.tsdb.path={workdir / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--log.level=warn",
        ],
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
        raise AssertionError("Prometheus did not start:\n" + (workdir / "prometheus.log").read_text()) from None
    return url
