"""Settings parsing: every malformed variable stops start-up with one line naming it."""

from __future__ import annotations

import os
import subprocess

import pytest

from deia.config import ConfigError, Env
from tests.support.procs import PYTHON, ROOT, manage_shell


def parse(method: str, name: str, value: str, *args, **kwargs):
    return getattr(Env({name: value}), method)(name, *args, **kwargs)


@pytest.mark.parametrize(
    ("method", "name", "value", "args", "message"),
    [
        ("database", "DATABASE_URL", "nonsense", ("sqlite:///x", {}), "expected postgres://"),
        ("database", "DATABASE_URL", "mysql://u:p@h/db", ("sqlite:///x", {}), "expected postgres://"),
        ("database", "DATABASE_URL", "postgres://u:p@db:5432/", ("sqlite:///x", {}), "no database name"),
        ("int", "MAX_BOTS", "-3", (10,), "must be at least 0"),
        ("int", "MAX_BOTS", "ten", (10,), "expected a whole number"),
        ("port_range", "BOT_PORT_RANGE", "9000-8000", ((8001, 8099),), "first port 9000 is above last port 8000"),
        ("port_range", "BOT_PORT_RANGE", "8001", ((8001, 8099),), "expected FIRST-LAST"),
        ("port_range", "BOT_PORT_RANGE", "80-90", ((8001, 8099),), "between 1024 and 65535"),
        ("bool", "DEBUG", "maybe", (False,), "expected true or false"),
        ("url", "OLLAMA_URL", "localhost:11434", ("http://x", ("http", "https")), "expected a URL"),
        ("cidrs", "METRICS_ALLOWED_CIDRS", "10.0.0.0/8,not-a-net", (["127.0.0.0/8"],), "'not-a-net' is not"),
        ("choice", "LOG_FORMAT", "xml", ("json", ("json", "text")), "expected one of json, text"),
        ("rate", "API_THROTTLE_USER", "600", ("600/min",), "expected COUNT/PERIOD"),
        ("rate", "API_THROTTLE_USER", "600/fortnight", ("600/min",), "expected COUNT/PERIOD"),
        ("rate", "API_THROTTLE_ANON", "0/min", ("60/min",), "expected COUNT/PERIOD"),
        ("cidrs", "TRUSTED_PROXIES", "nginx.internal", ([],), "'nginx.internal' is not"),
    ],
)
def test_each_malformed_variable_names_itself(method, name, value, args, message):
    kwargs = {"minimum": 0} if name == "MAX_BOTS" else {}
    with pytest.raises(ConfigError) as err:
        parse(method, name, value, *args, **kwargs)
    assert str(err.value).startswith(f"{name}: ")
    assert message in str(err.value)


def test_good_values_parse():
    env = Env(
        {
            "MAX_BOTS": "0",
            "BOT_PORT_RANGE": "9000-9010",
            "DEBUG": "true",
            "DATABASE_URL": "postgres://deia:pw@db.internal:5433/deia",
        }
    )
    assert env.int("MAX_BOTS", 10, minimum=0) == 0
    assert env.port_range("BOT_PORT_RANGE", (8001, 8099)) == (9000, 9010)
    assert env.bool("DEBUG", False) is True
    db = env.database("DATABASE_URL", "sqlite:///x", {})
    assert db["ENGINE"] == "django_prometheus.db.backends.postgresql"
    assert (db["HOST"], db["PORT"], db["NAME"], db["USER"]) == ("db.internal", 5433, "deia", "deia")
    assert db["OPTIONS"]["pool"]["max_size"] > 0
    assert db["CONN_MAX_AGE"] == 0


def test_rates_parse_as_drf_writes_them_or_off():
    assert parse("rate", "API_THROTTLE_USER", " 1200/Minute ", "600/min") == "1200/minute"
    assert parse("rate", "API_THROTTLE_USER", "off", "600/min") is None
    assert Env({}).rate("API_THROTTLE_ANON", "60/min") == "60/min"


def test_a_unix_socket_database_url_is_accepted():
    db = Env({}).database("DATABASE_URL", "postgres://deia@/deia?host=/run/postgresql", {})
    assert (db["HOST"], db["NAME"], db["USER"]) == ("/run/postgresql", "deia", "deia")
    assert "host" not in db["OPTIONS"]


def test_unset_means_embedded_defaults():
    env = Env({})
    db = env.database("DATABASE_URL", "sqlite:////srv/deia/var/deia.sqlite3", {"timeout": 20})
    assert db["ENGINE"].endswith("sqlite3")
    assert db["NAME"] == "/srv/deia/var/deia.sqlite3"
    assert env.port_range("BOT_PORT_RANGE", (8001, 8099)) == (8001, 8099)
    assert env.int("MAX_BOTS", 10, minimum=0) == 10


def test_secret_can_come_from_a_file(tmp_path):
    secret = tmp_path / "key"
    secret.write_text("s3cret\n")
    assert Env({"SECRET_KEY_FILE": str(secret)}).secret("SECRET_KEY") == "s3cret"
    with pytest.raises(ConfigError, match="SECRET_KEY_FILE: cannot read"):
        Env({"SECRET_KEY_FILE": str(tmp_path / "missing")}).secret("SECRET_KEY")


def run_manage(env_changes: dict[str, str | None]) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    for key, value in env_changes.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    return subprocess.run([PYTHON, "manage.py", "check"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"DATABASE_URL": "nonsense"}, "DATABASE_URL: expected postgres://"),
        ({"MAX_BOTS": "-3"}, "MAX_BOTS: must be at least 0, got -3"),
        ({"BOT_PORT_RANGE": "9000-8000"}, "BOT_PORT_RANGE: first port 9000 is above last port 8000"),
        ({"DEBUG": "false", "SECRET_KEY": None, "SECRET_KEY_FILE": None}, "SECRET_KEY: not set and DEBUG is off"),
        ({"TRUST_PROXY": "true"}, "TRUST_PROXY: replaced by TRUSTED_PROXIES"),
        ({"API_THROTTLE_ANON": "lots"}, "API_THROTTLE_ANON: expected COUNT/PERIOD"),
    ],
)
def test_start_up_stops_with_one_line(changes, expected):
    result = run_manage(changes)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("configuration error: ")
    assert expected in lines[0]


@pytest.mark.parametrize("name", ["DB_POOL_MAX_SIZE", "RUNNER_DB_POOL_MAX_SIZE"])
def test_a_bad_pool_size_is_a_one_line_configuration_error(name):
    result = run_manage({name: "lots"})
    assert result.returncode == 2
    assert result.stderr.strip() == f"configuration error: {name}: expected a whole number, got 'lots'"


def test_manage_py_finds_the_key_make_run_left_in_the_var_dir(tmp_path):
    (tmp_path / "secret_key").write_text("key-that-make-run-wrote-0123456789-abcdefghijklmnopqrstuvwxyz\n")
    changes = {"SECRET_KEY": None, "SECRET_KEY_FILE": None, "DEBUG": "false", "DEIA_VAR_DIR": str(tmp_path)}
    assert run_manage(changes).returncode == 0
    result = manage_shell("from django.conf import settings; print(settings.SECRET_KEY)", changes)
    assert result.stdout.strip() == "key-that-make-run-wrote-0123456789-abcdefghijklmnopqrstuvwxyz"
    # Without the file the key is still required.
    (tmp_path / "secret_key").unlink()
    result = run_manage(changes)
    assert result.returncode == 2 and "SECRET_KEY: not set" in result.stderr
