"""DEIA Bot Controller settings: every environment variable is read here, and only here.

Unset variables give the embedded default (SQLite under var/, local-memory cache, a
file-based Celery broker under var/, the echo LLM backend) so `make run` works on a bare
machine. A malformed value raises ConfigError, which manage.py, wsgi and the Celery app
turn into one line naming the variable.
"""

from __future__ import annotations

import socket
import sys
from datetime import timedelta
from pathlib import Path

from deia.config import ConfigError, Env
from deia.pooler import direct_command

BASE_DIR = Path(__file__).resolve().parent.parent
env = Env()

VAR_DIR = Path(env.str("DEIA_VAR_DIR", str(BASE_DIR / "var")))

# --- core -------------------------------------------------------------------------
DEBUG = env.bool("DEBUG", False)
SECRET_KEY = env.secret("SECRET_KEY")
if SECRET_KEY is None and (VAR_DIR / "secret_key").is_file():
    # The key `make run` writes: a second shell's manage.py finds it without exporting anything.
    SECRET_KEY = Env({"SECRET_KEY_FILE": str(VAR_DIR / "secret_key")}).secret("SECRET_KEY")
if SECRET_KEY is None:
    if not DEBUG:
        raise ConfigError("SECRET_KEY", "not set and DEBUG is off; set SECRET_KEY or SECRET_KEY_FILE")
    SECRET_KEY = "django-insecure-development-key"  # noqa: S105 - DEBUG only; check --deploy flags it
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", ["127.0.0.1", "localhost", "[::1]"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", [])
# Proxies whose X-Forwarded-For/-Proto/-Host are believed (deia/proxies.py); empty: none.
TRUSTED_PROXIES = env.cidrs("TRUSTED_PROXIES", [])
if env.raw("TRUST_PROXY") is not None:
    raise ConfigError("TRUST_PROXY", "replaced by TRUSTED_PROXIES: list the proxies' addresses, e.g. 127.0.0.1/32")
HOSTNAME = env.str("DEIA_HOSTNAME", socket.gethostname())

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django_prometheus",
    "django_celery_beat",
    "rest_framework",
    "deia.apitokens.apps.ApiTokensConfig",
    "axes",
    "drf_spectacular",
    # After the admin and the third-party apps: its ready() audits every registered admin.
    "deia.apps.DeiaConfig",
    "bots.apps.BotsConfig",
    "ops.apps.OpsConfig",
]

# Django's own middleware through deia.inline_middleware: the same classes, their hooks run
# on the event loop instead of a thread hop each (see there). Security, CSRF and
# X-Frame-Options stay Django's own classes: `check --deploy` looks for them by name.
MIDDLEWARE = [
    "deia.proxies.ForwardedHeadersMiddleware",
    "deia.inline_middleware.PrometheusBeforeMiddleware",
    # Per-minute request figures kept in memory for the System Overview (deia/traffic.py).
    "deia.traffic.TrafficMiddleware",
    "deia.middleware.RequestLogMiddleware",
    "deia.middleware.ApiJsonErrorsMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "deia.middleware.StaticFilesMiddleware",
    "deia.middleware.GZipMiddleware",
    "deia.inline_middleware.SessionMiddleware",
    "deia.inline_middleware.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "deia.inline_middleware.AuthenticationMiddleware",
    "deia.inline_middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Turns a locked-out sign-in into a 429 page (after the auth backends flagged it).
    "axes.middleware.AxesMiddleware",
    "deia.inline_middleware.PrometheusAfterMiddleware",
]

ROOT_URLCONF = "ops.urls"
WSGI_APPLICATION = "deia.wsgi.application"
ASGI_APPLICATION = "deia.asgi.application"
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- database ---------------------------------------------------------------------
# SQLite is shared by web, worker, beat and every runner: WAL lets readers run beside the
# one writer, the busy timeout waits instead of failing, IMMEDIATE takes the write lock at
# BEGIN so two writers never deadlock on a lock upgrade.
_SQLITE_OPTIONS = {
    "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    "timeout": 20,
    "transaction_mode": "IMMEDIATE",
}
# Per process: every web worker, Celery worker and bot runner has its own pool.
DB_POOL_MAX_SIZE = env.int("DB_POOL_MAX_SIZE", 10, minimum=1)
# What a bot runner gets as its DB_POOL_MAX_SIZE (bots/lifecycle/process.py): it serves few connections.
RUNNER_DB_POOL_MAX_SIZE = env.int("RUNNER_DB_POOL_MAX_SIZE", 4, minimum=1)
# "pgbouncer": DATABASE_URL is PgBouncer in transaction pooling mode (docs/PGBOUNCER.md), and
# DATABASE_DIRECT_URL is PostgreSQL itself, for what must not go through it: migrations,
# pg_dump/pg_restore, dbshell (deia.pooler.DIRECT_COMMANDS, the backup jobs).
DATABASE_POOLER = env.choice("DATABASE_POOLER", "none", ("none", "pgbouncer"))
DATABASES = {
    "default": env.database(
        "DATABASE_URL",
        f"sqlite:///{VAR_DIR / 'deia.sqlite3'}",
        _SQLITE_OPTIONS,
        pool_max=DB_POOL_MAX_SIZE,
        pooler=DATABASE_POOLER,
    )
}
DATABASE_DIRECT = (
    env.database("DATABASE_DIRECT_URL", "", _SQLITE_OPTIONS, pool_max=2) if env.raw("DATABASE_DIRECT_URL") else None
)
# What the app's processes use (deia.pooler checks it), whichever this process connects to.
DATABASE_SERVED = DATABASES["default"]
if DATABASE_DIRECT is not None and direct_command(sys.argv):
    DATABASES["default"] = DATABASE_DIRECT
DATABASE_IS_POSTGRES = "postgresql" in DATABASES["default"]["ENGINE"]
DB_POOL_MAX = DATABASES["default"].get("OPTIONS", {}).get("pool", {}).get("max_size", 0) if DATABASE_IS_POSTGRES else 0
# Threads per web worker for everything but the chat path (deia/asgi.py); chats entering
# their synchronous step share the rest of the pool (bots.chat_api).
WEB_SYNC_THREADS = env.int("WEB_SYNC_THREADS", max(2, (DB_POOL_MAX or 10) // 2), minimum=1, maximum=256)
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
# Admin lists of big tables (chat messages, audit log) show PostgreSQL's estimate ("about N")
# instead of a COUNT(*) of the whole table once the planner counts more rows than this.
ADMIN_COUNT_ESTIMATE_ABOVE = env.int("ADMIN_COUNT_ESTIMATE_ABOVE", 100_000, minimum=0)
# Each web process hands its per-minute traffic counts to the database at most this often (deia.traffic).
TRAFFIC_FLUSH_SECONDS = env.float("TRAFFIC_FLUSH_SECONDS", 15.0, minimum=0.5)

# --- cache and broker -------------------------------------------------------------
REDIS_URL = env.raw("REDIS_URL")
if REDIS_URL is not None:
    REDIS_URL = env.url("REDIS_URL", REDIS_URL, ("redis", "rediss", "unix"))
    CACHES = {
        "default": {
            "BACKEND": "django_prometheus.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "TIMEOUT": 300,
            "OPTIONS": {
                "CLIENT_CLASS": "django_redis.client.DefaultClient",
                "SOCKET_CONNECT_TIMEOUT": 2,
                "SOCKET_TIMEOUT": 2,
            },
        }
    }
else:
    CACHES = {"default": {"BACKEND": "django_prometheus.cache.backends.locmem.LocMemCache"}}

BROKER_DIR = VAR_DIR / "broker"
CELERY_BROKER_URL = env.url(
    "CELERY_BROKER_URL", REDIS_URL or "filesystem://", ("redis", "rediss", "amqp", "filesystem", "unix")
)
CELERY_BROKER_TRANSPORT_OPTIONS: dict = {}
if CELERY_BROKER_URL.startswith("filesystem"):
    CELERY_BROKER_URL = "filesystem://"
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(BROKER_DIR / "queue"),
        "data_folder_out": str(BROKER_DIR / "queue"),
        "control_folder": str(BROKER_DIR / "control"),
        "store_processed": False,
    }
else:
    # A task left unacknowledged by a dead worker comes back after this long.
    CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 3600}
if CELERY_BROKER_URL.startswith("redis://"):
    # Redis with a guard: a message that is not JSON is dropped and counted (deia/broker.py).
    CELERY_BROKER_TRANSPORT = "deia.broker:RedisTransport"
# Counts the messages Celery rejects (unknown task, undecodable body) and never raises on one.
CELERY_WORKER_CONSUMER = "deia.broker:Consumer"
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SOFT_TIME_LIMIT = 600
CELERY_TASK_TIME_LIMIT = 900
CELERY_TASK_DEFAULT_QUEUE = "bots"
CELERY_TASK_ROUTES = {"ops.tasks.*": {"queue": "maintenance"}}
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
CELERY_TIMEZONE = "UTC"

# --- bots -------------------------------------------------------------------------
MAX_BOTS = env.int("MAX_BOTS", 10, minimum=0, maximum=1000)
BOT_PORT_RANGE = env.port_range("BOT_PORT_RANGE", (8001, 8099))
BOT_BIND_HOST = env.str("BOT_BIND_HOST", "127.0.0.1")
BOT_ADVERTISE_HOST = env.str("BOT_ADVERTISE_HOST", BOT_BIND_HOST)
BOT_START_TIMEOUT = env.float("BOT_START_TIMEOUT", 10.0, minimum=0.1)
BOT_STOP_GRACE = env.float("BOT_STOP_GRACE", 10.0, minimum=0.0)
# Fork runners from a pre-loaded template per host (bots/lifecycle/template.py); false: exec each one.
BOT_RUNNER_TEMPLATE = env.bool("BOT_RUNNER_TEMPLATE", True)
BOT_MAX_START_RETRIES = env.int("BOT_MAX_START_RETRIES", 5, minimum=1)
BOT_HEARTBEAT_INTERVAL = env.float("BOT_HEARTBEAT_INTERVAL", 3.0, minimum=0.1)
BOT_HEARTBEAT_STALE = env.float("BOT_HEARTBEAT_STALE", 30.0, minimum=1.0)
BOT_BACKOFF_BASE = env.float("BOT_BACKOFF_BASE", 1.0, minimum=0.0)
BOT_BACKOFF_CAP = env.float("BOT_BACKOFF_CAP", 300.0, minimum=0.0)
BOT_BACKOFF_RESET = env.float("BOT_BACKOFF_RESET", 600.0, minimum=0.0)
BOT_CHAT_TIMEOUT = env.float("BOT_CHAT_TIMEOUT", 120.0, minimum=0.1)
# Backpressure: a bot answers at most this many chats at once (the next gets 429 bot_busy
# at once), and one user has at most this many chats in flight across all bots.
BOT_MAX_CONCURRENT_CHATS = env.int("BOT_MAX_CONCURRENT_CHATS", 16, minimum=1, maximum=10000)
CHAT_MAX_CONCURRENT_PER_USER = env.int("CHAT_MAX_CONCURRENT_PER_USER", 8, minimum=1, maximum=10000)
BOT_RECONCILE_INTERVAL = env.float("BOT_RECONCILE_INTERVAL", 10.0, minimum=1.0)
# (lifecycle additions go here)
# Hosts (bots/lifecycle/hosts.py, docs/ARCHITECTURE.md#fencing): each bots worker keeps its
# Host row alive every HOST_HEARTBEAT_SECONDS; a host silent for HOST_LEASE_SECONDS is lost
# and its bots placed elsewhere. A runner that cannot record a heartbeat for
# BOT_FENCE_SECONDS stops serving: it must do so before its host can be declared lost.
HOST_HEARTBEAT_SECONDS = env.float("HOST_HEARTBEAT_SECONDS", 10.0, minimum=0.1)
HOST_LEASE_SECONDS = env.float("HOST_LEASE_SECONDS", 60.0, minimum=1.0)
HOST_MAX_BOTS = env.int("HOST_MAX_BOTS", MAX_BOTS, minimum=0, maximum=1000)
HOST_LABELS = env.str("HOST_LABELS", "")
BOT_FENCE_SECONDS = env.float(
    "BOT_FENCE_SECONDS", max(HOST_LEASE_SECONDS - HOST_HEARTBEAT_SECONDS - 5, 0.5), minimum=0.1
)
if BOT_FENCE_SECONDS >= HOST_LEASE_SECONDS - HOST_HEARTBEAT_SECONDS:
    raise ConfigError(
        "BOT_FENCE_SECONDS",
        f"{BOT_FENCE_SECONDS:g} must be below HOST_LEASE_SECONDS - HOST_HEARTBEAT_SECONDS "
        f"({HOST_LEASE_SECONDS:g} - {HOST_HEARTBEAT_SECONDS:g}): a cut-off runner must stop before its host is lost",
    )
if BOT_FENCE_SECONDS <= BOT_HEARTBEAT_INTERVAL:
    raise ConfigError(
        "BOT_FENCE_SECONDS",
        f"{BOT_FENCE_SECONDS:g} must exceed BOT_HEARTBEAT_INTERVAL ({BOT_HEARTBEAT_INTERVAL:g}): "
        "every runner would fence itself",
    )
OLLAMA_URL = env.url("OLLAMA_URL", "http://localhost:11434", ("http", "https"))
OPENAI_URL = env.url("OPENAI_URL", "http://localhost:8080/v1", ("http", "https"))
OPENAI_API_KEY = env.secret("OPENAI_API_KEY")
LLM_CONNECT_TIMEOUT = env.float("LLM_CONNECT_TIMEOUT", 5.0, minimum=0.1)
LLM_READ_TIMEOUT = env.float("LLM_READ_TIMEOUT", 120.0, minimum=0.1)
LLM_RETRIES = env.int("LLM_RETRIES", 2, minimum=0, maximum=10)

# --- operations -------------------------------------------------------------------
BACKUP_DIR = Path(env.str("BACKUP_DIR", str(VAR_DIR / "backups")))
BACKUP_RETENTION_DAYS = env.int("BACKUP_RETENTION_DAYS", 30, minimum=1)
LOG_DIR = Path(env.str("LOG_DIR", str(VAR_DIR / "log")))
LOG_RETENTION_DAYS = env.int("LOG_RETENTION_DAYS", 30, minimum=1)
_retention = env.int("CHAT_RETENTION_DAYS", 0, minimum=0)
CHAT_RETENTION_DAYS = _retention or None
METRICS_ALLOWED_CIDRS = env.cidrs("METRICS_ALLOWED_CIDRS", ["127.0.0.0/8", "::1/128"])
METRICS_TOKEN = env.secret("METRICS_TOKEN")
PROMETHEUS_MULTIPROC_DIR = env.raw("PROMETHEUS_MULTIPROC_DIR")
# The System Overview's figures come from this Prometheus' query API when set, else from the app's own samples.
PROMETHEUS_URL = env.url("PROMETHEUS_URL", "", ("http", "https")) if env.raw("PROMETHEUS_URL") else None
HEALTH_CHECK_TIMEOUT = env.float("HEALTH_CHECK_TIMEOUT", 2.0, minimum=0.1)
# `manage.py setup` creates this admin once; the password is generated and printed if unset.
DEIA_ADMIN_USER = env.str("DEIA_ADMIN_USER", "admin")
DEIA_ADMIN_PASSWORD = env.secret("DEIA_ADMIN_PASSWORD")

# (maintenance additions go here)
# Folder of pg_dump/pg_restore matching the server (Debian: /usr/lib/postgresql/15/bin); empty = PATH.
PG_BIN_DIR = env.str("PG_BIN_DIR", "")
MAINTENANCE_COMMAND_TIMEOUT = env.float("MAINTENANCE_COMMAND_TIMEOUT", 3600.0, minimum=1.0)
CHAT_RETENTION_BATCH = env.int("CHAT_RETENTION_BATCH", 5000, minimum=1)
# chat_partitions keeps this month's partition of chat_messages and the next N months' (PostgreSQL).
CHAT_PARTITIONS_AHEAD = env.int("CHAT_PARTITIONS_AHEAD", 3, minimum=0, maximum=36)
# Audit rows older than this are deleted by the audit_retention job (daily).
AUDIT_RETENTION_DAYS = env.int("AUDIT_RETENTION_DAYS", 400, minimum=1)
IDLE_CONNECTION_MINUTES = env.float("IDLE_CONNECTION_MINUTES", 30.0, minimum=0.0)
SLOW_QUERY_SECONDS = env.float("SLOW_QUERY_SECONDS", 10.0, minimum=0.0)
DIAGNOSE_WEB_URL = env.url("DIAGNOSE_WEB_URL", "http://127.0.0.1:8000", ("http", "https"))
DIAGNOSE_TIMEOUT = env.float("DIAGNOSE_TIMEOUT", 5.0, minimum=0.1)
# The Operations page shows diagnose results at most this old (0: run the checks on every load).
DIAGNOSE_CACHE_SECONDS = env.int("DIAGNOSE_CACHE_SECONDS", 15, minimum=0, maximum=3600)
DIAGNOSE_DISK_WARN_PERCENT = env.float("DIAGNOSE_DISK_WARN_PERCENT", 20.0)
DIAGNOSE_DISK_CRIT_PERCENT = env.float("DIAGNOSE_DISK_CRIT_PERCENT", 5.0)
DIAGNOSE_MEMORY_WARN_PERCENT = env.float("DIAGNOSE_MEMORY_WARN_PERCENT", 15.0)
DIAGNOSE_MEMORY_CRIT_PERCENT = env.float("DIAGNOSE_MEMORY_CRIT_PERCENT", 5.0)
DIAGNOSE_BACKUP_MAX_AGE_HOURS = env.float("DIAGNOSE_BACKUP_MAX_AGE_HOURS", 26.0, minimum=1.0)
DIAGNOSE_RESTORE_CHECK_MAX_AGE_DAYS = env.float("DIAGNOSE_RESTORE_CHECK_MAX_AGE_DAYS", 35.0, minimum=1.0)
# The weekly and monthly operations reports are mailed to these addresses (comma-separated;
# empty: kept in the admin only), through Django's email backend below.
REPORT_EMAILS = env.emails("REPORT_EMAILS")
EMAIL_BACKEND = env.str("EMAIL_BACKEND", "django.core.mail.backends.smtp.EmailBackend")
EMAIL_HOST = env.str("EMAIL_HOST", "localhost")
EMAIL_PORT = env.int("EMAIL_PORT", 25, minimum=1, maximum=65535)
EMAIL_HOST_USER = env.str("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = env.secret("EMAIL_HOST_PASSWORD") or ""
EMAIL_USE_TLS = env.bool("EMAIL_USE_TLS", False)
EMAIL_TIMEOUT = env.int("EMAIL_TIMEOUT", 30, minimum=1)
# The file-based backend's folder (EMAIL_BACKEND=django.core.mail.backends.filebased.EmailBackend).
EMAIL_FILE_PATH = env.str("EMAIL_FILE_PATH", str(VAR_DIR / "mail"))
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", f"deia@{HOSTNAME}")

# --- API --------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "deia.apitokens.authentication.ApiTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.PageNumberPagination",
    "PAGE_SIZE": 50,
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "UNAUTHENTICATED_USER": None,
    "DEFAULT_THROTTLE_CLASSES": ["deia.throttling.UserRateThrottle", "deia.throttling.AnonRateThrottle"],
    "EXCEPTION_HANDLER": "bots.api.exception_handler",
}
# Per signed-in user and per anonymous client address (deia/throttling.py): COUNT/PERIOD or off.
API_THROTTLE_USER = env.rate("API_THROTTLE_USER", "600/min")
API_THROTTLE_ANON = env.rate("API_THROTTLE_ANON", "60/min")
SPECTACULAR_SETTINGS = {
    "TITLE": "DEIA Bot Controller API",
    "DESCRIPTION": "Start, stop and chat with a fleet of LLM bots.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
}

# --- security ---------------------------------------------------------------------
SECURE_HTTPS = env.bool("SECURE_HTTPS", False)
SESSION_COOKIE_SECURE = SECURE_HTTPS
CSRF_COOKIE_SECURE = SECURE_HTTPS
# The token in a cookie (Django's default), said here because the chat door runs CSRF's
# hooks on the event loop only while they read no session (deia.inline_middleware.on_the_loop).
CSRF_USE_SESSIONS = False
SECURE_SSL_REDIRECT = SECURE_HTTPS
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", 31536000 if SECURE_HTTPS else 0, minimum=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", SECURE_HTTPS)
SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", SECURE_HTTPS)
# Prometheus and load balancers probe these over plain HTTP on the loopback or LAN.
SECURE_REDIRECT_EXEMPT = [r"^health(/.*)?$", r"^metrics$", r"^api/prometheus/targets$"]
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
SESSION_COOKIE_HTTPONLY = True
if TRUSTED_PROXIES:
    # Only from trusted peers: ForwardedHeadersMiddleware drops these headers from others.
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    USE_X_FORWARDED_HOST = True
if SECURE_HTTPS and not DEBUG and SECRET_KEY.startswith("django-insecure"):
    raise ConfigError("SECRET_KEY", "the development key cannot be used with SECURE_HTTPS")

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
# Admin sign-in lockout (django-axes): LOGIN_FAILURE_LIMIT failures for one user name or
# from one address lock that name or address out for LOGIN_LOCKOUT_MINUTES. Each failure
# up to the lockout is audited, then one auth.lockout row; refused tries write nothing.
# ModelBackend with a user's permissions in one query (the API checks one on most requests).
AUTHENTICATION_BACKENDS = ["deia.lockout.LockoutBackend", "deia.auth.OneQueryModelBackend"]
AXES_FAILURE_LIMIT = env.int("LOGIN_FAILURE_LIMIT", 5, minimum=1)
AXES_COOLOFF_TIME = timedelta(minutes=env.int("LOGIN_LOCKOUT_MINUTES", 15, minimum=1))
AXES_LOCKOUT_PARAMETERS = ["username", "ip_address"]
AXES_CLIENT_IP_CALLABLE = "deia.proxies.client_ip"
AXES_RESET_ON_SUCCESS = True
# Tries during a lockout neither extend it nor count: the cooldown ends when it says.
AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT = False
# Sign-ins are in the audit log already; axes keeps only its failure counters.
AXES_DISABLE_ACCESS_LOG = True
AXES_VERBOSE = False
if env.bool("DEIA_FAST_PASSWORD_HASHER", False):
    PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
STATIC_URL = "static/"
STATIC_ROOT = Path(env.str("STATIC_ROOT", str(VAR_DIR / "static")))
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}

# --- logging ----------------------------------------------------------------------
LOG_LEVEL = env.choice("LOG_LEVEL", "INFO", ("debug", "info", "warning", "error", "critical")).upper()
LOG_FORMAT = env.choice("LOG_FORMAT", "json", ("json", "text"))
# Under systemd (the units set it): each line starts with its syslog priority, <3> to <7>.
LOG_SYSLOG_PREFIX = env.bool("LOG_SYSLOG_PREFIX", False)
# Servers (gunicorn, Celery, runbot, runserver) log to stdout. A one-shot manage.py command
# logs to stderr, so its stdout is its result alone (scripts read it); journald takes both.
_ONE_SHOT_COMMAND = Path(sys.argv[0]).name == "manage.py" and sys.argv[1:2] not in (["runbot"], ["runserver"])
LOG_STREAM = "ext://sys.stderr" if _ONE_SHOT_COMMAND else "ext://sys.stdout"
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"request_id": {"()": "deia.logs.RequestIdFilter"}},
    "formatters": {
        # One JSON object per line (time, level, logger, message, request_id, extra fields).
        "json": {"()": "deia.logs.JsonFormatter", "syslog_prefix": LOG_SYSLOG_PREFIX},
        "text": {"()": "deia.logs.TextFormatter", "syslog_prefix": LOG_SYSLOG_PREFIX},
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "stream": LOG_STREAM,
            "formatter": LOG_FORMAT,
            "filters": ["request_id"],
        }
    },
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        # Our request log replaces Django's own per-request lines.
        "django.server": {"level": "WARNING"},
        "django.request": {"level": "ERROR"},
        "httpx": {"level": "WARNING"},
        "httpcore": {"level": "WARNING"},
        "celery": {"level": LOG_LEVEL},
    },
}

# (observability additions go here)
# /metrics exports deia_health_check_up from checks at most this old (refreshed in the background).
HEALTH_METRICS_MAX_AGE = env.float("HEALTH_METRICS_MAX_AGE", 15.0, minimum=1.0)
# Celery workers log through LOGGING above (JSON lines) instead of replacing the root handler.
CELERY_WORKER_HIJACK_ROOT_LOGGER = False

# django-prometheus: buckets at the guide's 0.2 s API target and the 2 s slow threshold.
PROMETHEUS_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.3, 0.5, 1.0, 2.0, 5.0, 10.0, float("inf"))
PROMETHEUS_EXPORT_MIGRATIONS = False
