"""gunicorn settings for the web process (systemd unit deia-web, and `make run`).

Uvicorn workers serving Django's ASGI application: a chat waiting on its bot is a
suspended coroutine, not a held worker, so the admin, the API, /health and /metrics never
queue behind chats. Everything else runs as before, each request's synchronous part in a
thread of its own. gunicorn's `timeout` is the worker's heartbeat to the master (the event
loop reports in while requests wait), so it does not cut a long chat: BOT_CHAT_TIMEOUT
does. Metrics use prometheus_client's multiprocess mode: every worker writes its
values to PROMETHEUS_MULTIPROC_DIR, /metrics sums them, the directory is wiped when the
master starts and a dead worker's live gauges are dropped by child_exit.
"""

from __future__ import annotations

import multiprocessing
import os
from pathlib import Path

from deia.adapters import gunicorn as adapter
from deia.config import ConfigError, Env, fail, owner_only_files

# The master creates the metrics files and the workers the rest: all owner-only.
owner_only_files()
_base = Path(__file__).resolve().parent.parent
# Set before any worker imports prometheus_client: it picks its multiprocess value class
# from the environment once, at import. Nothing in this master imports it earlier.
_metrics_dir = os.environ.setdefault(
    "PROMETHEUS_MULTIPROC_DIR", str(Path(os.environ.get("DEIA_VAR_DIR", _base / "var")) / "metrics")
)
# Workers export process_* for the master and each other (ops.metrics.WebProcessesCollector).
os.environ["DEIA_WEB_MASTER_PID"] = str(os.getpid())

bind = os.environ.get("GUNICORN_BIND", "127.0.0.1:8000")
workers = int(os.environ.get("GUNICORN_WORKERS", 0)) or multiprocessing.cpu_count() * 2 + 1
# Of those, the ones that take chats (deia.adapters.gunicorn): the rest accept every
# connection and hand chats over, so the admin, the API, /health and /metrics are
# answered by processes a burst of chats does not keep busy. At least one worker stays
# with the rest; 0 serves chats in every worker, as one pool.
# They run at a lower CPU priority (GUNICORN_CHAT_NICE added to their niceness): when the
# cores are short, the control plane is served first.
try:
    chat_workers = min(Env().int("GUNICORN_CHAT_WORKERS", multiprocessing.cpu_count() + 1, minimum=0), workers - 1)
    chat_nice = Env().int("GUNICORN_CHAT_NICE", 5, minimum=0, maximum=19)
except ConfigError as _err:
    fail(_err)
worker_class = "deia.adapters.gunicorn.Worker"
timeout = int(os.environ.get("GUNICORN_TIMEOUT", 60))
graceful_timeout = 30
keepalive = 5
max_requests = int(os.environ.get("GUNICORN_MAX_REQUESTS", 0))
max_requests_jitter = max_requests // 10
# X-Forwarded-Proto is believed only from TRUSTED_PROXIES, the same list Django's
# settings use (deia/proxies.py); none by default. (The uvicorn workers leave forwarded
# headers to Django: deia.adapters.gunicorn.Worker turns uvicorn's own proxy handling off.)
try:
    _trusted_proxies = Env().cidrs("TRUSTED_PROXIES", [])
except ConfigError as _err:
    fail(_err)
forwarded_allow_ips = ",".join(str(network) for network in _trusted_proxies)
if not _trusted_proxies:
    secure_scheme_headers: dict[str, str] = {}
chdir = str(_base)
wsgi_app = "deia.asgi:application"
proc_name = "deia-web"
# gunicorn's control socket is one path per user: two instances (tests, a second site)
# would fight over it, and nothing here uses it.
control_socket_disable = True
# The app logs one JSON line per request itself; set GUNICORN_ACCESSLOG=- to also log
# the server's own view of each request (requests refused before Django included), as JSON
# (deia.asgi.AccessLog).
accesslog = os.environ.get("GUNICORN_ACCESSLOG") or None
errorlog = "-"
# Its own lines carry the syslog priority too when LOG_SYSLOG_PREFIX is on (the units).
logger_class = "deia.adapters.gunicorn.Logger"
loglevel = os.environ.get("LOG_LEVEL", "info").lower()


def on_starting(server) -> None:
    # Stale files from a previous run would add old counts to new ones. Only prometheus_client's
    # own files go: the directory may be one an operator chose and shares.
    os.makedirs(_metrics_dir, exist_ok=True)
    for stale in Path(_metrics_dir).glob("*.db"):
        stale.unlink(missing_ok=True)
    # With TLS in gunicorn itself a connection's state is in the worker's TLS session, which
    # cannot go with the socket: then every worker serves everything (nginx does TLS in deploy/).
    if chat_workers > 0 and not server.cfg.is_ssl:
        adapter.open_handover(nice=chat_nice)


def pre_fork(server, worker) -> None:
    adapter.assign_role(server, worker, chat_workers)


def on_reload(server) -> None:
    adapter.reloading(server)


def child_exit(server, worker) -> None:
    # A dead worker's live gauges (pool connections) leave the sums; its counters and
    # histograms stay in the directory, so no total ever goes backwards.
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid, _metrics_dir)
