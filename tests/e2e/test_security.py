"""Production settings: `check --deploy` is clean, headers are set, responses compressed."""

from __future__ import annotations

import os
import subprocess

import httpx
import pytest

from tests.support.procs import PYTHON, ROOT

# The documented production variables (README, deploy/deia.env.example).
PRODUCTION_ENV = {
    "DEBUG": "false",
    "SECRET_KEY": "x" * 20 + "-production-like-secret-key-with-enough-entropy-0123456789",
    "ALLOWED_HOSTS": "deia.example.com",
    "SECURE_HTTPS": "true",
    "TRUST_PROXY": "true",
}


def test_check_deploy_passes_with_no_warnings_in_production():
    env = {**os.environ, **PRODUCTION_ENV}
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
def test_forwarded_proto_is_trusted_only_with_trust_proxy(gunicorn):
    https_only = {"SECURE_HTTPS": "true", "SECRET_KEY": PRODUCTION_ENV["SECRET_KEY"]}
    untrusting = gunicorn(workers=1, **https_only)
    response = httpx.get(f"{untrusting}/admin/login/", headers={"X-Forwarded-Proto": "https"})
    assert response.status_code == 301  # the header is ignored: still redirected to https
    trusting = gunicorn(workers=1, TRUST_PROXY="true", **https_only)
    response = httpx.get(f"{trusting}/admin/login/", headers={"X-Forwarded-Proto": "https"})
    assert response.status_code == 200
    assert "max-age=31536000" in response.headers["Strict-Transport-Security"]
    assert "Secure" in response.headers["Set-Cookie"]
