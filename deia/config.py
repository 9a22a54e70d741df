"""Strict readers for the environment.

Every setting the product reads from the environment goes through one of these helpers,
so that a bad value stops start-up with one line that names the variable and says what
is wrong, instead of a traceback from deep inside Django or Celery.
"""

from __future__ import annotations

import ipaddress
import os
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit

import environ

from deia.redact import redact


class ConfigError(Exception):
    """A malformed environment variable. str(err) is the one line an operator sees."""

    def __init__(self, name: str, problem: str):
        self.name = name
        self.problem = problem
        super().__init__(f"{name}: {problem}")


class Env:
    """Reads variables from a mapping (os.environ by default) with strict parsing."""

    def __init__(self, environ_: Mapping[str, str] | None = None):
        self.environ = os.environ if environ_ is None else environ_

    def raw(self, name: str) -> str | None:
        value = self.environ.get(name)
        if value is None or value.strip() == "":
            return None
        return value.strip()

    def str(self, name: str, default: str) -> str:
        value = self.raw(name)
        return default if value is None else value

    def bool(self, name: str, default: bool) -> bool:
        value = self.raw(name)
        if value is None:
            return default
        lowered = value.lower()
        if lowered in ("true", "1", "yes", "on"):
            return True
        if lowered in ("false", "0", "no", "off"):
            return False
        raise ConfigError(name, f"expected true or false, got {value!r}")

    def int(self, name: str, default: int, *, minimum: int | None = None, maximum: int | None = None) -> int:
        return self._number(name, default, int, "a whole number", minimum, maximum)

    def float(self, name: str, default: float, *, minimum: float = 0.0) -> float:
        return self._number(name, default, float, "a number", minimum, None)

    def _number(self, name, default, parse, kind: str, minimum, maximum):
        value = self.raw(name)
        if value is None:
            return default
        try:
            number = parse(value)
        except ValueError:
            raise ConfigError(name, f"expected {kind}, got {value!r}") from None
        if minimum is not None and number < minimum:
            raise ConfigError(name, f"must be at least {minimum}, got {number}")
        if maximum is not None and number > maximum:
            raise ConfigError(name, f"must be at most {maximum}, got {number}")
        return number

    def list(self, name: str, default: list[str]) -> list[str]:
        value = self.raw(name)
        if value is None:
            return list(default)
        return [item.strip() for item in value.split(",") if item.strip()]

    def emails(self, name: str) -> list[str]:
        """Comma-separated mail addresses (empty: none); one that is not name@domain is refused."""
        addresses = self.list(name, [])
        for address in addresses:
            local, at, domain = address.partition("@")
            if not (local and at and domain) or "@" in domain or any(c.isspace() for c in address):
                raise ConfigError(name, f"not a mail address: {address!r}")
        return addresses

    def choice(self, name: str, default: str, choices: tuple[str, ...]) -> str:
        value = self.str(name, default)
        if value.lower() not in choices:
            raise ConfigError(name, f"expected one of {', '.join(choices)}, got {value!r}")
        return value.lower()

    def secret(self, name: str) -> str | None:
        """A secret from NAME, or from the file named by NAME_FILE (systemd credentials)."""
        value = self.raw(name)
        if value is not None:
            return value
        path = self.raw(f"{name}_FILE")
        if path is None:
            return None
        try:
            content = Path(path).read_text().strip()
        except OSError as exc:
            raise ConfigError(f"{name}_FILE", f"cannot read {path}: {exc.strerror}") from None
        if not content:
            raise ConfigError(f"{name}_FILE", f"{path} is empty")
        return content

    def port_range(self, name: str, default: tuple[int, int]) -> tuple[int, int]:
        value = self.raw(name)
        if value is None:
            return default
        parts = value.split("-")
        if len(parts) != 2 or not all(p.strip().isdigit() for p in parts):
            raise ConfigError(name, f"expected FIRST-LAST, for example 8001-8099, got {value!r}")
        first, last = (int(p) for p in parts)
        if not (1024 <= first <= 65535 and 1024 <= last <= 65535):
            raise ConfigError(name, f"ports must be between 1024 and 65535, got {value!r}")
        if first > last:
            raise ConfigError(name, f"first port {first} is above last port {last}")
        return first, last

    def cidrs(self, name: str, default: list[str]) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
        networks = []
        for item in self.list(name, default):
            try:
                networks.append(ipaddress.ip_network(item, strict=False))
            except ValueError:
                raise ConfigError(name, f"{item!r} is not an address or network") from None
        return networks

    RATE_PERIODS = ("s", "sec", "second", "m", "min", "minute", "h", "hour", "d", "day")

    def rate(self, name: str, default: str) -> str | None:
        """A request rate as DRF writes it ("600/min"), or None for "off"."""
        value = self.str(name, default)
        if value.lower() == "off":
            return None
        count, _, period = value.partition("/")
        if not count.isdigit() or int(count) < 1 or period.lower() not in self.RATE_PERIODS:
            raise ConfigError(name, f"expected COUNT/PERIOD (PERIOD one of s, min, hour, day) or off, got {value!r}")
        return f"{int(count)}/{period.lower()}"

    def url(self, name: str, default: str, schemes: tuple[str, ...]) -> str:
        value = self.str(name, default)
        parts = urlsplit(value)
        if parts.scheme not in schemes:
            raise ConfigError(
                name, f"expected a URL starting with {' or '.join(s + '://' for s in schemes)}, got {value!r}"
            )
        if parts.scheme.startswith("http") and not parts.hostname:
            raise ConfigError(name, f"no host in {value!r}")
        return value.rstrip("/")

    def database(self, name: str, default: str, sqlite_options: dict, pool_max: int = 10, pooler: str = "none") -> dict:
        """DATABASE_URL to a Django DATABASES entry: PostgreSQL (pooled) or SQLite.

        pooler="pgbouncer": the URL is PgBouncer in transaction pooling mode (docs/PGBOUNCER.md).
        """
        value = self.str(name, default)
        scheme = urlsplit(value).scheme
        if scheme in ("postgres", "postgresql", "pgsql"):
            config = environ.Env.db_url_config(value)
            if not config.get("NAME"):
                raise ConfigError(name, "no database name in the URL (postgres://user:pass@host:5432/NAME)")
            options = dict(config.get("OPTIONS") or {})
            if not config.get("HOST") and options.get("host"):
                # postgres://deia@/deia?host=/run/postgresql: the Unix socket directory.
                config["HOST"] = str(options.pop("host"))
            if not config.get("HOST"):
                raise ConfigError(
                    name, "no host in the URL (postgres://user:pass@HOST:5432/name or ?host=/run/postgresql)"
                )
            # Django's psycopg 3 pool: connections are reused across requests; CONN_MAX_AGE
            # must stay 0 with it. A bounded wait turns an exhausted pool into an error.
            options.setdefault("pool", {"min_size": 1, "max_size": pool_max, "timeout": 10})
            options.setdefault("connect_timeout", 5)
            # Names our sessions in pg_stat_activity (diagnose, the idle-connection remedy).
            options.setdefault("application_name", "deia")
            config["OPTIONS"] = options
            config["ENGINE"] = "django_prometheus.db.backends.postgresql"
            config["CONN_MAX_AGE"] = 0
            # The pool checks a connection before handing it out, so one killed by the
            # idle-connection remedy or a PostgreSQL restart is replaced, not an error.
            config["CONN_HEALTH_CHECKS"] = True
            if pooler == "pgbouncer":
                # Each transaction may run on another server connection: no named prepared
                # statements (PgBouncer 1.18 cannot carry them over) and no WITH HOLD cursors,
                # which Django declares for .iterator() outside a transaction (they outlive it).
                options.setdefault("prepare_threshold", None)
                config["DISABLE_SERVER_SIDE_CURSORS"] = True
            return config
        if scheme == "sqlite":
            # sqlite:////abs/path.sqlite3 is absolute, sqlite:///rel.sqlite3 relative.
            path = value[len("sqlite://") :]
            if path.startswith("/"):
                path = path[1:]
            if not path:
                raise ConfigError(name, "no file in the SQLite URL (sqlite:////absolute/path.sqlite3)")
            return {
                "ENGINE": "django_prometheus.db.backends.sqlite3",
                "NAME": path,
                "OPTIONS": dict(sqlite_options),
            }
        raise ConfigError(
            name,
            f"expected postgres://user:password@host:5432/name or sqlite:////path, got {value!r}",
        )


def fail(err: ConfigError, stream=None) -> None:
    """Print the one-line error and exit non-zero: for manage.py, wsgi, celery."""
    print(f"configuration error: {redact(str(err))}", file=stream or sys.stderr)
    raise SystemExit(2)


# Backups (token keys, password hashes, every chat), the SQLite database, logs and the
# broker's messages are nobody else's business: files 0600, folders 0700.
OWNER_ONLY_UMASK = 0o077


def owner_only_files() -> None:
    """Whatever umask the process was started with, what it creates is its owner's alone.

    Called first thing by every entry point (manage.py and so every runner, wsgi, the
    Celery app, gunicorn's config); children inherit it.
    """
    os.umask(OWNER_ONLY_UMASK)


@contextmanager
def public_files() -> Iterator[None]:
    """For files that are public by nature (the admin's static files, which nginx serves)."""
    previous = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(previous)


def leave_metrics_multiprocess_mode() -> None:
    """Only gunicorn's web workers share PROMETHEUS_MULTIPROC_DIR.

    A management command, a Celery worker or a bot runner that inherited the variable
    (an operator's shell, a shared EnvironmentFile) would leave files in the web's
    directory that gunicorn never cleans up, and crash if the directory is missing.
    """
    os.environ.pop("PROMETHEUS_MULTIPROC_DIR", None)


def import_settings_or_exit() -> None:
    """Import the settings module early so that a ConfigError is one line, not a traceback."""
    import importlib

    module = os.environ.setdefault("DJANGO_SETTINGS_MODULE", "deia.settings")
    try:
        importlib.import_module(module)
    except ConfigError as err:
        fail(err)
