"""gunicorn settings for the web process (systemd unit deia-web, and `make run`).

Sync workers: with django-prometheus on, they held steady where gthread workers lost
throughput. Metrics use prometheus_client's multiprocess mode: every worker writes its
values to PROMETHEUS_MULTIPROC_DIR, /metrics sums them, the directory is wiped when the
master starts and a dead worker's live gauges are dropped by child_exit.
"""

from __future__ import annotations

import json
import multiprocessing
import os
from datetime import UTC, datetime
from pathlib import Path

import gunicorn.http.wsgi
from gunicorn.glogging import Logger

from deia.config import Env, owner_only_files

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
worker_class = "sync"
timeout = int(os.environ.get("GUNICORN_TIMEOUT", 60))
graceful_timeout = 30
keepalive = 5
max_requests = int(os.environ.get("GUNICORN_MAX_REQUESTS", 0))
max_requests_jitter = max_requests // 10
# X-Forwarded-Proto is believed only with TRUST_PROXY (as in Django's settings), and then
# only from the proxy's own address.
_trust_proxy = Env().bool("TRUST_PROXY", False)
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1") if _trust_proxy else ""
if not _trust_proxy:
    secure_scheme_headers: dict[str, str] = {}
chdir = str(_base)
wsgi_app = "deia.wsgi:application"
proc_name = "deia-web"
# gunicorn's control socket is one path per user: two instances (tests, a second site)
# would fight over it, and nothing here uses it.
control_socket_disable = True
# The app logs one JSON line per request itself; set GUNICORN_ACCESSLOG=- to also log
# gunicorn's own view of each request (requests refused before Django included), as JSON.
accesslog = os.environ.get("GUNICORN_ACCESSLOG") or None


class JsonAccessLogger(Logger):
    """Access lines built with json.dumps: a quote in a path or user agent stays data."""

    def access(self, resp, req, environ, request_time) -> None:
        if not self.access_log_enabled:
            return
        headers = {name.lower(): value for name, value in getattr(resp, "headers", [])}
        line = {
            "time": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": "INFO",
            "logger": "gunicorn.access",
            "method": environ.get("REQUEST_METHOD"),
            "path": environ.get("PATH_INFO"),
            "status": getattr(resp, "status_code", None),
            "duration_ms": round(request_time.total_seconds() * 1000, 2),
            "bytes": getattr(resp, "sent", None),
            "request_id": headers.get("x-request-id"),
            "remote": environ.get("REMOTE_ADDR"),
            "user_agent": environ.get("HTTP_USER_AGENT"),
        }
        self.access_log.info(json.dumps(line))


logger_class = JsonAccessLogger
errorlog = "-"
loglevel = os.environ.get("LOG_LEVEL", "info").lower()

# No server banner beyond the bare name.
gunicorn.http.wsgi.SERVER = "deia"


def on_starting(server) -> None:
    # Stale files from a previous run would add old counts to new ones. Only prometheus_client's
    # own files go: the directory may be one an operator chose and shares.
    os.makedirs(_metrics_dir, exist_ok=True)
    for stale in Path(_metrics_dir).glob("*.db"):
        stale.unlink(missing_ok=True)


def child_exit(server, worker) -> None:
    # A dead worker's live gauges (pool connections) leave the sums; its counters and
    # histograms stay in the directory, so no total ever goes backwards.
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid, _metrics_dir)
