"""`manage.py setup` (make run's setup step) can run any number of times."""

from __future__ import annotations

import io
import subprocess

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command

from bots.models import Backend, Bot
from deia.models import AuditLog
from tests.support.procs import PYTHON, ROOT

pytestmark = pytest.mark.django_db(transaction=True)


def run_setup() -> str:
    out = io.StringIO()
    call_command("setup", stdout=out)
    return out.getvalue()


def test_setup_twice_neither_fails_nor_duplicates(settings, tmp_path):
    settings.DEIA_ADMIN_PASSWORD = None
    settings.STATIC_ROOT = tmp_path / "static"
    first = run_setup()
    assert "password:" in first  # generated and printed once
    second = run_setup()
    assert "password:" not in second
    assert "admin 'admin' present" in second
    User = get_user_model()
    assert User.objects.filter(username="admin", is_superuser=True).count() == 1
    demo = Bot.objects.get(slug="demo")
    assert demo.backend == Backend.ECHO
    assert Bot.objects.count() == 1
    assert AuditLog.objects.filter(action="bot.create").count() == 1
    assert AuditLog.objects.filter(action="auth.user.create").count() == 1


def test_setup_uses_the_given_admin_password(settings, tmp_path):
    settings.DEIA_ADMIN_PASSWORD = "a-long-operator-password"
    settings.STATIC_ROOT = tmp_path / "static"
    output = run_setup()
    assert "a-long-operator-password" not in output
    assert get_user_model().objects.get(username="admin").check_password("a-long-operator-password")


@pytest.mark.parametrize("password", ["admin1", "password123", "12345678901234"])
def test_setup_refuses_an_admin_password_the_validators_refuse_and_creates_nothing(child_env, tmp_path, password):
    var = tmp_path / "fresh-var"
    env = {**child_env, "DEIA_VAR_DIR": str(var), "DEIA_ADMIN_PASSWORD": password, "DEIA_ADMIN_USER": "admin"}
    result = subprocess.run(
        [PYTHON, "manage.py", "setup"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 2
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("CommandError: DEIA_ADMIN_PASSWORD refused: ")
    assert password not in line
    assert not var.exists()
    assert not get_user_model().objects.exists()
    assert not Bot.objects.exists()
    assert not AuditLog.objects.exists()
