"""Admin sign-in lockout (django-axes): per user name and per address, audited once per lockout."""

from __future__ import annotations

import ipaddress
from datetime import timedelta

import pytest
import time_machine
from django.urls import reverse
from django.utils import timezone

from deia.models import AuditLog

pytestmark = pytest.mark.django_db

LOGIN = "/admin/login/"
OUTSIDE = "203.0.113.9"
GOOD = "correct-horse-battery"
WRONG = "wrong-guess"


@pytest.fixture
def ops_user(django_user_model):
    return django_user_model.objects.create_superuser("ops", password=GOOD)


def sign_in(client, username: str = "ops", password: str = WRONG, **meta):
    return client.post(LOGIN, {"username": username, "password": password, "next": "/admin/"}, **meta)


def actions() -> list[str]:
    return list(AuditLog.objects.order_by("id").values_list("action", flat=True))


def test_a_hundred_wrong_passwords_lock_out_and_write_a_bounded_audit(client, settings, ops_user):
    codes = [sign_in(client).status_code for _ in range(100)]
    limit = settings.AXES_FAILURE_LIMIT
    assert codes == [200] * (limit - 1) + [429] * (100 - limit + 1)
    # (axes announces the lockout while the failure that caused it is still being audited)
    assert sorted(actions()) == ["auth.lockout"] + ["auth.login_failed"] * limit
    lockout = AuditLog.objects.get(action="auth.lockout")
    assert (lockout.actor, lockout.target, lockout.ip) == ("ops", "ops", "127.0.0.1")
    assert lockout.details == {"failures": limit, "cooloff_seconds": 15 * 60}
    # The right password is refused too while the lockout lasts, and writes nothing.
    assert sign_in(client, password=GOOD).status_code == 429
    assert len(actions()) == limit + 1


def test_the_lockout_ends_after_the_cooldown(client, settings, ops_user):
    for _ in range(settings.AXES_FAILURE_LIMIT):
        sign_in(client)
    assert sign_in(client, password=GOOD).status_code == 429
    with time_machine.travel(timezone.now() + settings.AXES_COOLOFF_TIME + timedelta(seconds=1)):
        assert sign_in(client, password=GOOD).status_code == 302
    assert actions()[-1] == "auth.login"


def test_one_address_trying_many_names_is_locked_out(client, settings, ops_user):
    for i in range(settings.AXES_FAILURE_LIMIT):
        sign_in(client, username=f"guess{i}", REMOTE_ADDR=OUTSIDE)
    assert sign_in(client, password=GOOD, REMOTE_ADDR=OUTSIDE).status_code == 429
    assert sign_in(client, password=GOOD, REMOTE_ADDR="198.51.100.7").status_code == 302  # others are not


def test_one_name_tried_from_many_addresses_is_locked_out(client, settings, ops_user):
    settings.TRUSTED_PROXIES = [ipaddress.ip_network("127.0.0.1/32")]
    for i in range(settings.AXES_FAILURE_LIMIT):
        sign_in(client, HTTP_X_FORWARDED_FOR=f"198.51.100.{i}")
    assert sign_in(client, password=GOOD, HTTP_X_FORWARDED_FOR="198.51.100.200").status_code == 429
    lockout = AuditLog.objects.get(action="auth.lockout")
    assert lockout.ip == f"198.51.100.{settings.AXES_FAILURE_LIMIT - 1}"


def test_forging_x_forwarded_for_does_not_escape_the_address_lockout(client, settings, ops_user):
    settings.TRUSTED_PROXIES = [ipaddress.ip_network("127.0.0.1/32")]
    for i in range(settings.AXES_FAILURE_LIMIT):
        sign_in(client, username=f"guess{i}", REMOTE_ADDR=OUTSIDE, HTTP_X_FORWARDED_FOR=f"10.0.0.{i}")
    refused = sign_in(client, username="other", REMOTE_ADDR=OUTSIDE, HTTP_X_FORWARDED_FOR="10.9.9.9")
    assert refused.status_code == 429
    assert set(AuditLog.objects.values_list("ip", flat=True)) == {OUTSIDE}


def test_a_successful_sign_in_clears_earlier_failures(client, settings, ops_user):
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        sign_in(client)
    assert sign_in(client, password=GOOD).status_code == 302
    client.post(reverse("admin:logout"))
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        sign_in(client)
    assert sign_in(client, password=GOOD).status_code == 302
    assert "auth.lockout" not in actions()
