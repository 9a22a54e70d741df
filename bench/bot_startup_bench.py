"""Bot start-up time and runner memory: forked from the runner template and by exec, side by side.

Two measures, each for both start paths (BOT_RUNNER_TEMPLATE true and false), against a
fake Ollama:

1. the worker's spawn to a healthy /health: the lifecycle's own start path run here
   (bots.lifecycle.transitions.start_bot: claim, port, spawn, wait for /health), N times,
   the recorded startup_seconds;
2. an operator's POST /api/bots/<id>/start to status running: gunicorn, a real bots
   worker and Redis, N times, the status polled in the database every 5 ms.

Prints median, p95 and max of each, and the runner's resident (VmRSS) and proportional
(Pss) memory after one chat. The first start of each series warms up and is not counted.
Not run by the tests.

    Usage: make bench BENCH=bot_startup_bench (or env $(TEST_ENV) .venv/bin/python bench/bot_startup_bench.py -n 20)
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

MODES = (("template", "true"), ("exec", "false"))


def memory_mib(pid: int) -> tuple[float, float]:
    """(VmRSS, Pss) of a process in MiB."""
    rss = pss = 0.0
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1]) / 1024
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for line in f:
            if line.startswith("Pss:"):
                pss = int(line.split()[1]) / 1024
    return rss, pss


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) a process has used: what a start costs, whatever the host's load."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def summary(values: list[float]) -> tuple[float, float, float]:
    ordered = sorted(values)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return statistics.median(ordered), p95, ordered[-1]


def spawn_to_health(bot, n: int) -> tuple[list[float], list[float], list[tuple[float, float]]]:
    """startup_seconds of n starts through the lifecycle (plus one warm-up), the runner's CPU time
    when healthy, and its memory after a chat."""
    import httpx

    from bots.lifecycle import transitions
    from bots.models import Bot, DesiredState, Status

    times, cpu, memory = [], [], []
    for i in range(n + 1):
        Bot.objects.filter(pk=bot.pk).update(desired_state=DesiredState.RUNNING, start_failures=0)
        outcome = transitions.start_bot(bot.pk)
        bot.refresh_from_db()
        if outcome != "started" or bot.status != Status.RUNNING:
            raise RuntimeError(f"start failed: {outcome}: {bot.last_error}")
        if i:
            times.append(bot.startup_seconds)
            cpu.append(cpu_seconds(bot.pid))
        secret = {"X-Bot-Secret": bot.chat_secret}
        reply = httpx.post(f"http://{bot.address}/chat", json={"message": "hello"}, headers=secret, timeout=10)
        reply.raise_for_status()
        memory.append(memory_mib(bot.pid))
        Bot.objects.filter(pk=bot.pk).update(desired_state=DesiredState.STOPPED)
        transitions.stop_bot(bot.pk)
    return times, cpu, memory


def api_to_running(bot, n: int, base: str, key: str) -> list[float]:
    """Seconds from POST /api/bots/<id>/start to status running, n times (plus one warm-up)."""
    import httpx

    from bots.models import Bot, Status
    from tests.support.procs import wait_for

    auth = {"Authorization": f"Token {key}"}
    times = []
    with httpx.Client(base_url=base, headers=auth, timeout=10) as client:
        for i in range(n + 1):
            began = time.monotonic()
            client.post(f"/api/bots/{bot.pk}/start").raise_for_status()
            wait_for(
                lambda: Bot.objects.filter(pk=bot.pk, status=Status.RUNNING).exists(),
                timeout=30,
                interval=0.005,
                what="bot running",
            )
            if i:
                times.append(time.monotonic() - began)
            client.post(f"/api/bots/{bot.pk}/stop").raise_for_status()
            wait_for(lambda: Bot.objects.filter(pk=bot.pk, status=Status.STOPPED).exists(), timeout=30)
    return times


def bots_worker() -> subprocess.Popen:
    """A bots worker with this process's environment (so its template's fingerprint is ours)."""
    env = dict(os.environ)
    args = [sys.executable, "-m", "celery", "-A", "deia", "worker", "-Q", "bots", "-c", "2", "--pool=prefork"]
    args += ["-n", "bench-startup@%h", "--without-gossip", "--without-mingle", "-l", "WARNING"]
    return subprocess.Popen(args, cwd=ROOT, env=env, start_new_session=True, stdout=sys.stderr, stderr=sys.stderr)


def stop(proc: subprocess.Popen) -> None:
    import signal

    os.killpg(proc.pid, signal.SIGTERM)
    proc.wait(30)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=20, help="number of starts per path and measure (default 20)")
    args = parser.parse_args()

    from tests.fakes.ollama import FakeOllama

    fake = FakeOllama().start()
    os.environ["OLLAMA_URL"] = fake.url  # the runner inherits it, as from a worker's env
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "deia.settings")
    import django

    django.setup()
    from django.conf import settings
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Permission
    from django.core.management import call_command

    from bench.support import gunicorn
    from bots.lifecycle import template, transitions
    from bots.lifecycle.process import kill_group
    from bots.models import Bot, DesiredState
    from deia.apitokens.models import ApiToken

    call_command("migrate", verbosity=0)
    bot, _ = Bot.objects.update_or_create(
        slug="bench-startup", defaults={"name": "bench-startup", "model_name": "llama3.2"}
    )
    user, _ = get_user_model().objects.get_or_create(username="bench-startup", defaults={"is_staff": True})
    for codename in ("operate_bot", "manage_all_bots"):
        user.user_permissions.add(Permission.objects.get(content_type__app_label="bots", codename=codename))
    token, key = ApiToken.objects.issue(user, name="bench-startup")
    spawn: dict[str, list[float]] = {}
    cpu: dict[str, list[float]] = {}
    memory: dict[str, list[tuple[float, float]]] = {}
    api: dict[str, list[float]] = {}
    try:
        for mode, flag in MODES:
            settings.BOT_RUNNER_TEMPLATE = flag == "true"
            os.environ["BOT_RUNNER_TEMPLATE"] = flag
            if settings.BOT_RUNNER_TEMPLATE:
                template.ensure_started()
                if template.wait_ready(template.fingerprint()) is None:
                    raise RuntimeError(f"no runner template ready: see {template.template_log()}")
            spawn[mode], cpu[mode], memory[mode] = spawn_to_health(bot, args.n)
        with gunicorn(API_THROTTLE_USER="off") as base:
            for mode, flag in MODES:
                os.environ["BOT_RUNNER_TEMPLATE"] = flag
                worker = bots_worker()
                if flag == "true" and template.wait_ready(template.fingerprint(), timeout=60) is None:
                    raise RuntimeError(f"the worker's runner template is not ready: see {template.template_log()}")
                try:
                    api[mode] = api_to_running(bot, args.n, base, key)
                finally:
                    stop(worker)
    finally:
        Bot.objects.filter(pk=bot.pk).update(desired_state=DesiredState.STOPPED)
        transitions.stop_bot(bot.pk)
        Bot.objects.filter(pk=bot.pk).delete()
        token.delete()
        if (pid := template.ping()) is not None:
            kill_group(pid["pid"])
        fake.stop()

    print("## Bot start-up (bench/bot_startup_bench.py)\n")
    print(
        f"Each start path {args.n} times (after one warm-up) for an ollama bot against the fake Ollama: "
        "*template* forks the runner from the host's pre-loaded runner template, *exec* starts "
        "`manage.py runbot` in a fresh interpreter (`BOT_RUNNER_TEMPLATE=false`, and the fallback "
        "when no template answers). *Spawn to /health* is the lifecycle's start path run in the bench "
        "process (its recorded startup_seconds); *API to running* is POST /api/bots/<id>/start through "
        "gunicorn, Redis and a real bots worker until the status reads running (polled every 5 ms). "
        "The runner's CPU time when healthy is what a start costs whatever the host's load (a forked "
        "runner counts from the fork; 10 ms ticks). Load average when done: "
        f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs.\n"
    )
    print("| measure | template | exec |")
    print("| --- | ---: | ---: |")
    for label, series in (("spawn to /health", spawn), ("API start to running", api)):
        for i, stat in enumerate(("median", "p95", "max")):
            cells = " | ".join(f"{summary(series[mode])[i] * 1000:.0f} ms" for mode, _ in MODES)
            print(f"| {label} {stat} | {cells} |")
    cells = " | ".join(f"{statistics.median(cpu[mode]) * 1000:.0f} ms" for mode, _ in MODES)
    print(f"| runner CPU time (user + system) when healthy (median) | {cells} |")
    for i, stat in enumerate(("VmRSS", "Pss")):
        cells = " | ".join(f"{statistics.median(m[i] for m in memory[mode]):.1f} MiB" for mode, _ in MODES)
        print(f"| runner {stat} after one chat (median) | {cells} |")
    spawn_p95, api_p95 = summary(spawn["template"])[1], summary(api["template"])[1]
    print(
        f"\nTemplate: spawn to /health p95 {spawn_p95 * 1000:.0f} ms (target < 100 ms): "
        f"{'met' if spawn_p95 < 0.1 else 'NOT met'}; API start to running p95 {api_p95 * 1000:.0f} ms "
        f"(target < 300 ms): {'met' if api_p95 < 0.3 else 'NOT met'}."
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
