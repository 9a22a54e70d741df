"""Production settings: `check --deploy` is clean, headers are set, responses compressed."""

from __future__ import annotations

import os
import subprocess

import httpx
import pytest

from tests.support.procs import PYTHON, ROOT

ENV_EXAMPLE = ROOT / "deploy" / "systemd" / "deia.env.example"
PRODUCTION_SECRET = "x" * 20 + "-production-like-secret-key-with-enough-entropy-0123456789"


def documented_production_env(tmp_path) -> dict[str, str]:
    """The variables deploy/systemd/deia.env.example documents, with a real key file."""
    env = {}
    for line in ENV_EXAMPLE.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            name, value = line.split("=", 1)
            env[name.strip()] = value.strip()
    key = tmp_path / "secret_key"
    key.write_text(PRODUCTION_SECRET)
    env["SECRET_KEY_FILE"] = str(key)
    # Paths of a real installation that this machine does not have.
    for name in ("DEIA_VAR_DIR", "BACKUP_DIR", "LOG_DIR", "PROMETHEUS_MULTIPROC_DIR"):
        env[name] = str(tmp_path / name.lower())
    return env


def test_check_deploy_passes_with_no_warnings_with_the_documented_production_variables(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "SECRET_KEY"}
    env.update(documented_production_env(tmp_path))
    assert env["DEBUG"] == "false"
    result = subprocess.run(
        [PYTHON, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


@pytest.mark.django_db(transaction=True)
def test_responses_carry_security_headers_and_are_compressed(gunicorn):
    url = gunicorn(workers=1)
    response = httpx.get(f"{url}/admin/login/", headers={"Accept-Encoding": "gzip"})
    assert response.status_code == 200
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Content-Encoding"] == "gzip"
    assert "gunicorn" not in response.headers.get("Server", "").lower()
    assert "X-Request-ID" in response.headers


@pytest.mark.django_db(transaction=True)
def test_forwarded_proto_is_trusted_only_from_trusted_proxies(gunicorn):
    https_only = {"SECURE_HTTPS": "true", "SECRET_KEY": PRODUCTION_SECRET}
    untrusting = gunicorn(workers=1, **https_only)
    response = httpx.get(f"{untrusting}/admin/login/", headers={"X-Forwarded-Proto": "https"})
    assert response.status_code == 301  # the header is ignored: still redirected to https
    elsewhere = gunicorn(workers=1, TRUSTED_PROXIES="10.0.0.0/8", **https_only)
    response = httpx.get(f"{elsewhere}/admin/login/", headers={"X-Forwarded-Proto": "https"})
    assert response.status_code == 301  # the peer (loopback) is not one of the trusted proxies
    trusting = gunicorn(workers=1, TRUSTED_PROXIES="127.0.0.1/32,::1/128", **https_only)
    response = httpx.get(f"{trusting}/admin/login/", headers={"X-Forwarded-Proto": "https"})
    assert response.status_code == 200
    assert "max-age=31536000" in response.headers["Strict-Transport-Security"]
    assert "Secure" in response.headers["Set-Cookie"]
