"""API tokens: hashed at rest, prefix lookup, expiry, last use, shown once, revoked at once, audited."""

from __future__ import annotations

import importlib
import re
from datetime import timedelta

import pytest
import time_machine
from django.apps import apps
from django.core.management import call_command
from django.db import connection
from django.urls import reverse
from django.utils import timezone
from rest_framework.test import APIClient

from deia.apitokens.models import ApiToken, digest
from deia.models import AuditLog
from tests.support.tokens import api_key

pytestmark = pytest.mark.django_db

KEY = re.compile(r"\b[0-9a-f]{40}\b")


@pytest.fixture
def scripter(django_user_model):
    return django_user_model.objects.create_user("ci-script")


def get_bots(key: str, **extra) -> object:
    return APIClient().get("/api/bots", HTTP_AUTHORIZATION=f"Token {key}", **extra)


def test_only_a_digest_and_a_short_prefix_are_stored(scripter):
    key = api_key(scripter)
    token = ApiToken.objects.get(user=scripter)
    assert token.digest == digest(key) != key
    assert token.prefix == key[:8]
    with connection.cursor() as cursor:
        cursor.execute("SELECT * FROM api_tokens")
        assert key not in str(cursor.fetchall())
    assert get_bots(key).status_code == 200


def test_lookup_is_one_query_by_prefix(scripter, django_assert_num_queries):
    key = api_key(scripter)
    ApiToken.objects.issue(scripter)
    with django_assert_num_queries(1):
        assert ApiToken.objects.matching(key).user == scripter
    with django_assert_num_queries(1):
        assert ApiToken.objects.matching(key[:8] + "0" * 32) is None  # same prefix, wrong key


def test_an_expired_token_is_refused(scripter):
    key = api_key(scripter, expires_at=timezone.now() + timedelta(days=1))
    assert get_bots(key).status_code == 200
    with time_machine.travel(timezone.now() + timedelta(days=1, seconds=1)):
        response = get_bots(key)
    assert response.status_code == 401
    assert response.json() == {"error": "authentication_failed", "detail": "Token expired."}


def test_last_use_is_recorded_at_most_once_a_minute(scripter, django_assert_num_queries):
    key = api_key(scripter)
    start = timezone.now()
    with time_machine.travel(start, tick=False):
        get_bots(key)
        assert ApiToken.objects.get().last_used_at == start
    with time_machine.travel(start + timedelta(seconds=30), tick=False), django_assert_num_queries(3):
        get_bots(key)  # the token, the user's permissions (team scoping), the bots: no write
    assert ApiToken.objects.get().last_used_at == start
    with time_machine.travel(start + timedelta(seconds=61), tick=False):
        get_bots(key)
    assert ApiToken.objects.get().last_used_at == start + timedelta(seconds=61)


@pytest.mark.parametrize(
    "header",
    ["Token é", "Bearer é", "Token 中文", "Token", "Token a b", "Token ../../etc", "token " + "a" * 500, "Basic é"],
)
def test_malformed_or_non_ascii_credentials_are_a_401_json(header):
    response = APIClient().get("/api/bots", HTTP_AUTHORIZATION=header)
    assert response.status_code == 401
    assert response.json()["error"] in ("authentication_failed", "not_authenticated")


@pytest.mark.django_db(transaction=True)
def test_non_ascii_bytes_through_the_real_server_are_a_401(gunicorn):
    import httpx

    url = gunicorn(workers=1)
    for header in ("Token é".encode(), "Bearer é".encode(), b"Token \xff\xfe"):
        response = httpx.get(f"{url}/api/bots", headers={"Authorization": header}, timeout=10)
        assert response.status_code == 401, header
        assert response.json()["error"] in ("authentication_failed", "not_authenticated")


def test_the_admin_shows_the_key_once_and_audits_the_creation_without_it(admin_client, scripter):
    response = admin_client.post(
        reverse("admin:apitokens_apitoken_add"),
        {"user": scripter.pk, "name": "deploys", "expires_at_0": "", "expires_at_1": ""},
    )
    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"]
    (key,) = KEY.findall(response.content.decode())
    assert "messages" not in response.cookies  # rendered now, never stored for a later page
    token = ApiToken.objects.get(user=scripter)
    assert (token.name, token.prefix, token.digest) == ("deploys", key[:8], digest(key))
    row = AuditLog.objects.get(action="token.create")
    assert (row.actor, row.target) == ("admin", f"token {key[:8]} of ci-script")
    assert key not in f"{row.target} {row.details}"
    for page in (
        reverse("admin:apitokens_apitoken_changelist"),
        reverse("admin:apitokens_apitoken_change", args=[token.pk]),
    ):
        shown = admin_client.get(page)
        assert shown.status_code == 200 and key[:8] in shown.content.decode()
        assert key not in shown.content.decode()
    assert get_bots(key).status_code == 200


def test_the_key_never_reaches_the_logs(admin_client, scripter, caplog):
    with caplog.at_level("DEBUG"):
        response = admin_client.post(
            reverse("admin:apitokens_apitoken_add"), {"user": scripter.pk, "expires_at_0": "", "expires_at_1": ""}
        )
        (key,) = KEY.findall(response.content.decode())
        get_bots(key)
    assert key not in caplog.text


def test_revoking_in_the_admin_refuses_the_next_request_and_is_audited_once(admin_client, scripter):
    key = api_key(scripter)
    assert get_bots(key).status_code == 200
    token = ApiToken.objects.get()
    changelist = reverse("admin:apitokens_apitoken_changelist")
    for _ in range(2):
        admin_client.post(changelist, {"action": "revoke", "_selected_action": [token.pk]})
    response = get_bots(key)
    assert response.status_code == 401
    assert response.json() == {"error": "authentication_failed", "detail": "Invalid token."}
    token.refresh_from_db()
    assert token.state == "revoked"
    assert list(AuditLog.objects.filter(action="token.revoke").values_list("actor", "target")) == [
        ("admin", f"token {token.prefix} of ci-script")
    ]
    assert (
        admin_client.post(reverse("admin:apitokens_apitoken_delete", args=[token.pk]), {"post": "yes"}).status_code
        == 403
    )


def test_the_command_creates_lists_and_revokes(scripter, capsys):
    call_command("apitoken", "create", "ci-script", "--expires-days", "30", "--name", "nightly")
    key = capsys.readouterr().out.strip()
    assert KEY.fullmatch(key)
    token = ApiToken.objects.get()
    assert timedelta(days=29) < token.expires_at - timezone.now() <= timedelta(days=30)
    assert get_bots(key).status_code == 200
    call_command("apitoken", "list")
    assert capsys.readouterr().out.startswith(f"{key[:8]} ci-script active")
    call_command("apitoken", "revoke", key[:8])
    assert get_bots(key).status_code == 401
    actions = list(AuditLog.objects.order_by("id").values_list("action", "target"))
    assert actions == [
        ("token.create", f"token {key[:8]} of ci-script"),
        ("token.revoke", f"token {key[:8]} of ci-script"),
    ]
    assert AuditLog.objects.filter(actor__startswith="cli").count() == 2


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["create", "nobody"], "no user 'nobody'"),
        (["create", "ci-script", "--expires-days", "0"], "at least 1"),
        (["revoke", "deadbeef"], "0 unrevoked tokens"),
    ],
)
def test_the_command_refuses_bad_input_and_changes_nothing(scripter, args, message):
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match=message):
        call_command("apitoken", *args)
    assert not ApiToken.objects.exists()
    assert not AuditLog.objects.exists()


def test_existing_drf_keys_keep_working_after_the_migration(scripter):
    legacy = "0123456789abcdef0123456789abcdef01234567"
    created = timezone.now() - timedelta(days=100)
    with connection.cursor() as cursor:
        cursor.execute(
            "CREATE TABLE authtoken_token (key varchar(40) PRIMARY KEY, created timestamptz NOT NULL, "
            "user_id integer NOT NULL)"
        )
        cursor.execute("INSERT INTO authtoken_token VALUES (%s, %s, %s)", [legacy, created, scripter.pk])
    migration = importlib.import_module("deia.apitokens.migrations.0002_hash_drf_tokens")
    with connection.schema_editor() as editor:
        migration.hash_drf_tokens(apps, editor)
    token = ApiToken.objects.get(user=scripter)
    assert (token.prefix, token.digest, token.created_at) == (legacy[:8], digest(legacy), created)
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM authtoken_token")
        assert cursor.fetchone() == (0,)  # no plaintext key left behind
    assert get_bots(legacy).status_code == 200
