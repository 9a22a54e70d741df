"""GET /api/bots against its floor, and the metrics middleware on versus off, measured with wrk.

Two gunicorns of the real app (default worker count, uvicorn workers), the same
settings but for django-prometheus's two middleware: on in one, off in the other
(bench/settings.py). The first also serves the bare view (bench/bare.py): the same token
lookup, visibility rule, query and 21 fields with no middleware and no DRF, so
API/bare is the share of the floor our framework keeps. Every scenario runs BENCH_REPEATS
times (3), interleaved round by round so that a burst of load on the shared machine
hits all of them alike; the tables show the median and min to max.

The machine is shared and wrk's figures move with everyone else's load, so the same
three handlers are also measured in-process: CPU time of this process per request
(process_time), the WSGI handler called directly with no server, PostgreSQL's and
Redis's own CPU not included. That figure barely moves with the load of other processes.

Targets (issue 14): API/bare throughput >= 0.8; metrics middleware on costs at most 10 % of
the throughput with it off; API p95 < 20 ms at 500 req/s. wrk is closed-loop: the paced
scenario (13 clients, 18 ms think time each) offers about 500 req/s when each answer
takes under 8 ms, and reports the rate actually reached.
"""

from __future__ import annotations

import io
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.settings")
# The throttle still counts every request (its cost is measured) but never refuses.
os.environ["API_THROTTLE_USER"] = "1000000/min"

import django  # noqa: E402

django.setup()

from django.conf import settings  # noqa: E402
from django.contrib.auth import get_user_model  # noqa: E402
from django.contrib.auth.models import Permission  # noqa: E402
from django.core.handlers.wsgi import WSGIHandler  # noqa: E402
from django.test.utils import override_settings  # noqa: E402

from bench import bare  # noqa: E402
from bench.settings import METRICS_MIDDLEWARE  # noqa: E402
from bench.support import gunicorn, load_average, repeats, smoke, spread  # noqa: E402
from bots.models import Bot  # noqa: E402
from deia.apitokens.models import ApiToken  # noqa: E402

LUA = """
local think = tonumber(os.getenv("WRK_THINK_MS") or "0")
if think > 0 then
  delay = function() return think end
end
done = function(summary, latency, requests)
  io.write(string.format("RESULT rps=%.1f p50=%.3f p95=%.3f p99=%.3f errors=%d\\n",
    summary.requests / (summary.duration / 1e6), latency:percentile(50) / 1000,
    latency:percentile(95) / 1000, latency:percentile(99) / 1000,
    summary.errors.status + summary.errors.connect + summary.errors.read + summary.errors.timeout))
end
"""
BOTS = 10
SECONDS = 1 if smoke() else 8
APP = "bench.asgi:application"
COMMON_ENV = {"DJANGO_SETTINGS_MODULE": "bench.settings"}


def wrk(url: str, script: Path, headers: dict[str, str], connections: int = 16, think_ms: int = 0) -> dict[str, float]:
    """Closed loop; with think_ms each connection pauses that long between requests."""
    args = ["wrk", "-t2", f"-c{connections}", f"-d{SECONDS}s", "-s", str(script), url]
    for name, value in headers.items():
        args[1:1] = ["-H", f"{name}: {value}"]
    env = {**os.environ, "WRK_THINK_MS": str(think_ms)}
    out = subprocess.run(args, capture_output=True, text=True, check=True, env=env).stdout
    match = re.search(r"RESULT (.*)", out)
    assert match, out
    return {k: float(v) for k, v in (pair.split("=") for pair in match.group(1).split())}


def main() -> int:
    if not shutil.which("wrk"):
        print("wrk is not installed (apt-get install wrk)", file=sys.stderr)
        return 1
    user, _ = get_user_model().objects.get_or_create(username="bench-api", defaults={"is_staff": True})
    # Sees every team's bots (bots.manage_all_bots), as a fleet-wide script would.
    user.user_permissions.add(Permission.objects.get(content_type__app_label="bots", codename="manage_all_bots"))
    token, key = ApiToken.objects.issue(user, name="bench")
    made = [
        Bot.objects.create(name=f"bench-bot-{i}", slug=f"bench-bot-{i}").pk for i in range(BOTS - Bot.objects.count())
    ]
    try:
        with (
            gunicorn(APP, **COMMON_ENV) as metrics_on,
            gunicorn(APP, BENCH_METRICS_MIDDLEWARE="off", **COMMON_ENV) as metrics_off,
        ):
            return measure(metrics_on, metrics_off, key)
    finally:
        Bot.objects.filter(pk__in=made).delete()
        token.delete()


IN_PROCESS_REQUESTS = 20 if smoke() else 300


def cpu_ms_per_request(key: str) -> dict[str, list[float]]:
    """CPU ms of this process per GET /api/bots through each handler, BENCH_REPEATS rounds."""
    handlers = {"bare": bare.application, "api": WSGIHandler()}
    with override_settings(MIDDLEWARE=[name for name in settings.MIDDLEWARE if name not in METRICS_MIDDLEWARE]):
        handlers["api_no_metrics"] = WSGIHandler()  # builds its middleware chain from the settings now
    environ = {
        "REQUEST_METHOD": "GET",
        "PATH_INFO": "/api/bots",
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "80",
        "REMOTE_ADDR": "127.0.0.1",
        "HTTP_HOST": "127.0.0.1",
        "HTTP_AUTHORIZATION": f"Token {key}",
        "wsgi.url_scheme": "http",
    }

    def call(handler) -> None:
        statuses: list[str] = []
        body = handler({**environ, "wsgi.input": io.BytesIO()}, lambda status, headers: statuses.append(status))
        b"".join(body)
        if hasattr(body, "close"):
            body.close()
        assert statuses[0].startswith("200"), statuses

    cpu: dict[str, list[float]] = {name: [] for name in handlers}
    for handler in handlers.values():
        for _ in range(20):  # warm-up: connections, caches, imports
            call(handler)
    for _ in range(repeats()):
        for name, handler in handlers.items():
            began = time.process_time()
            for _ in range(IN_PROCESS_REQUESTS):
                call(handler)
            cpu[name].append((time.process_time() - began) * 1000 / IN_PROCESS_REQUESTS)
    return cpu


SCENARIOS = (
    ("bare", "bare view: token lookup + the same query and fields, no framework (saturated)"),
    ("api", "GET /api/bots (saturated)"),
    ("api_no_metrics", "GET /api/bots, metrics middleware off (saturated)"),
    ("paced", "GET /api/bots, 13 clients with 18 ms think time (about 500 req/s offered)"),
)


def measure(metrics_on: str, metrics_off: str, key: str) -> int:
    auth = {"Authorization": f"Token {key}"}
    for base, path in ((metrics_on, "/api/bots"), (metrics_on, "/bench/bare"), (metrics_off, "/api/bots")):
        response = httpx.get(f"{base}{path}", headers=auth)
        assert response.status_code == 200, (path, response.status_code, response.text[:200])
        assert len(response.json()) == Bot.objects.count(), path
    # The floor answers exactly what the API answers, or the ratio compares different work.
    api_body = httpx.get(f"{metrics_on}/api/bots", headers=auth).json()
    assert api_body == httpx.get(f"{metrics_on}/bench/bare", headers=auth).json(), "bare view differs from the API"
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write(LUA)
    script = Path(f.name)
    cpu = cpu_ms_per_request(key)
    runs: dict[str, list[dict[str, float]]] = {name: [] for name, _ in SCENARIOS}
    loads = []
    try:
        for base, path in ((metrics_on, "/bench/bare"), (metrics_on, "/api/bots"), (metrics_off, "/api/bots")):
            wrk(f"{base}{path}", script, auth)  # warm-up: every worker has its connections and imports
        for _ in range(repeats()):
            runs["bare"].append(wrk(f"{metrics_on}/bench/bare", script, auth))
            runs["api"].append(wrk(f"{metrics_on}/api/bots", script, auth))
            runs["api_no_metrics"].append(wrk(f"{metrics_off}/api/bots", script, auth))
            runs["paced"].append(wrk(f"{metrics_on}/api/bots", script, auth, connections=13, think_ms=18))
            loads.append(load_average())
    finally:
        script.unlink()
    report(runs, loads, cpu)
    return 0


def report(runs: dict[str, list[dict[str, float]]], loads: list[str], cpu: dict[str, list[float]]) -> None:
    n = len(runs["api"])
    print("## API throughput (bench/api_bench.py)\n")
    print(
        f"gunicorn with the default worker count (2 x cores + 1 uvicorn workers), {BOTS} bots, token "
        f"authentication, wrk -t2 -c16 -d{SECONDS}s; each scenario {n} times, interleaved; "
        "median (min to max). Load average (1/5/15 min) after each round: " + "; ".join(loads) + ".\n"
    )
    print("| scenario | req/s | p50 ms | p95 ms | p99 ms | errors |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for name, label in SCENARIOS:
        rs = runs[name]
        cells = [spread([r[k] for r in rs], 0 if k == "rps" else 1) for k in ("rps", "p50", "p95", "p99")]
        print(f"| {label} | {' | '.join(cells)} | {sum(r['errors'] for r in rs):.0f} |")
    print(
        f"\nIn-process, CPU ms of this process per request ({IN_PROCESS_REQUESTS} requests a round): "
        f"bare {spread(cpu['bare'], 2)}, GET /api/bots {spread(cpu['api'], 2)}, "
        f"GET /api/bots without the metrics middleware {spread(cpu['api_no_metrics'], 2)}."
    )
    ratios = [a["rps"] / b["rps"] for a, b in zip(runs["api"], runs["bare"], strict=True)]
    costs = [1 - a["rps"] / b["rps"] for a, b in zip(runs["api"], runs["api_no_metrics"], strict=True)]
    ratio, cost = sorted(ratios)[n // 2], sorted(costs)[n // 2]
    paced = sorted(runs["paced"], key=lambda r: r["p95"])[n // 2]
    print()
    print("| measure | median (min to max) | target | |")
    print("| --- | ---: | --- | --- |")
    print(f"| API/bare throughput | {spread(ratios, 2)} | >= 0.8 | {'met' if ratio >= 0.8 else 'NOT met'} |")
    print(
        f"| throughput lost to the metrics middleware | {spread([c * 100 for c in costs])} % | <= 10 % "
        f"| {'met' if cost <= 0.10 else 'NOT met'} |"
    )
    cpu_ratios = [b / a for a, b in zip(cpu["api"], cpu["bare"], strict=True)]
    cpu_costs = [1 - b / a for a, b in zip(cpu["api"], cpu["api_no_metrics"], strict=True)]
    print(f"| in-process: bare CPU / API CPU per request | {spread(cpu_ratios, 2)} | >= 0.8 | |")
    share = spread([c * 100 for c in cpu_costs])
    print(f"| in-process: share of the API's CPU spent in the metrics middleware | {share} % | <= 10 % | |")
    reached = paced["rps"] >= 475
    verdict = "met" if reached and paced["p95"] < 20 else "NOT met"
    print(
        f"| API p95 at the paced load (reached {paced['rps']:.0f} req/s) | {paced['p95']:.1f} ms | "
        f"< 20 ms at 500 req/s | {verdict} |"
    )


if __name__ == "__main__":
    raise SystemExit(main())
