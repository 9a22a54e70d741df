"""Failover: from a kill -9 of a host to every one of its bots running on the other host.

Two simulated hosts on this machine, each a real bots worker (Celery, its own DEIA_HOSTNAME
and half of BOT_PORT_RANGE), and beat's stand-in sending reconcile_all every 0.5 s. N echo
bots are started on host A; then A's worker, its runner template and every runner are
killed with SIGKILL (their process groups), and the clock runs until all N bots are
running on host B. Reported per size (10 and 50 bots), BENCH_REPEATS times each:
- kill to all running elsewhere (the issue's figure; target: HOST_LEASE_SECONDS + 30 s);
- kill to host.lost (the lease plus at most one reconcile interval);
- host.lost to all running elsewhere (the restart itself, independent of the lease).

The lease is short here (HOST_LEASE_SECONDS=6, HOST_HEARTBEAT_SECONDS=1, BOT_FENCE_SECONDS=3)
so the benchmark runs in minutes; with the default 60 s lease the first two figures grow by
54 s and the last stays as it is. Runs against a private PostgreSQL cluster (fifty runners
each hold a pooled connection).

    make bench BENCH=failover_bench          (FAILOVER_SIZES="10 50" by default)
"""

from __future__ import annotations

import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.support import load_average, repeats, rerun_in_private_postgres, smoke, spread  # noqa: E402

SIZES = [int(n) for n in os.environ.get("FAILOVER_SIZES", "2" if smoke() else "10 50").split()]
from tests.integration.hosts.timing import FENCE, HEARTBEAT, LEASE  # noqa: E402
from tests.integration.hosts.timing import HOST_ENV as SHORT_LEASES  # noqa: E402

HOST_ENV = {
    **SHORT_LEASES,
    "BOT_HEARTBEAT_INTERVAL": "0.5",
    "BOT_BACKOFF_BASE": "0.2",
    "BOT_BACKOFF_CAP": "2",
    "BOT_STOP_GRACE": "2",
    "BOT_START_TIMEOUT": "30",
    "LOG_LEVEL": "INFO",  # the worker says " ready." at INFO
}


def wait(predicate, timeout: float, what: str, interval: float = 0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise TimeoutError(f"no {what} within {timeout:g} s")


class Host:
    """A bots worker on a simulated host, in its own process group."""

    def __init__(self, name: str, ports: tuple[int, int], size: int, log_dir: Path) -> None:
        self.name = name
        env = {
            **os.environ,
            **HOST_ENV,
            "DEIA_HOSTNAME": name,
            "BOT_PORT_RANGE": f"{ports[0]}-{ports[1]}",
            "MAX_BOTS": str(size + 10),
            "HOST_MAX_BOTS": str(size + 10),
            "LOG_DIR": str(log_dir),
        }
        args = [sys.executable, "-m", "celery", "-A", "deia", "worker", "-Q", "bots", "-c", "4", "--pool=prefork"]
        args += ["-n", f"{name}@%h", "--without-gossip", "--without-mingle", "-l", "INFO"]
        self.log = log_dir / f"worker-{name}.log"
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(args, cwd=ROOT, env=env, stdout=out, stderr=out, start_new_session=True)
        try:
            wait(lambda: " ready." in self.log.read_text(errors="replace") or self.proc.poll() is not None, 60, "", 0.1)
        finally:
            if " ready." not in self.log.read_text(errors="replace"):
                self.stop()
                raise RuntimeError(f"worker {name} not ready: {self.log.read_text(errors='replace')[-2000:]}")

    def kill(self) -> None:
        """kill -9 the worker's group, its runner template's and every runner's."""
        from django.db import connection

        from bots.lifecycle.process import process_tag

        os.killpg(self.proc.pid, signal.SIGKILL)
        prefix = f"{self.name}/{connection.settings_dict['NAME']}/"
        for entry in os.listdir("/proc"):
            if entry.isdigit() and (process_tag(int(entry)) or "").startswith(prefix):
                try:
                    os.killpg(os.getpgid(int(entry)), signal.SIGKILL)
                except ProcessLookupError:
                    pass
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)


def ticker(stop: threading.Event) -> None:
    from deia.celery import app

    while not stop.is_set():
        app.send_task("bots.tasks.reconcile_all", queue="bots")
        stop.wait(0.5)


def one_failover(size: int, round_: int, ports: tuple[tuple[int, int], tuple[int, int]], log_dir: Path) -> dict:
    from django.core.management import call_command
    from django.db import connection

    from bots.lifecycle.process import process_tag, terminate
    from bots.models import Bot, Status
    from bots.models import Host as HostRow
    from deia.models import AuditLog

    a_name, b_name = f"bench-a-{size}-{round_}", f"bench-b-{size}-{round_}"
    a = Host(a_name, ports[0], size, log_dir)
    b = Host(b_name, ports[1], size, log_dir)
    bots = Bot.objects.bulk_create(
        Bot(name=f"failover-{size}-{round_}-{i}", slug=f"failover-{size}-{round_}-{i}", backend="echo")
        for i in range(size)
    )
    ids = [bot.pk for bot in bots]
    mine = Bot.objects.filter(pk__in=ids)
    try:
        for bot in bots:
            call_command("botctl", "start", bot.slug, "--host", a_name, stdout=open(os.devnull, "w"))  # noqa: SIM115
        wait(lambda: mine.filter(status=Status.RUNNING, host=a_name).count() == size, 120 + size, "bots on A", 0.2)
        print(f"failover_bench: {size} bots running on {a_name}; killing it", file=sys.stderr)
        killed_at = time.time()
        began = time.monotonic()
        a.kill()
        wait(
            lambda: mine.filter(status=Status.RUNNING, host=b_name).count() == size,
            LEASE + 60 + size,
            "bots on B",
            0.05,
        )
        total = time.monotonic() - began
        lost = AuditLog.objects.filter(action="host.lost", target=a_name).values_list("created_at", flat=True).first()
        to_lost = lost.timestamp() - killed_at
        return {"total": total, "to_lost": to_lost, "restart": total - to_lost}
    finally:
        b.stop()
        a.stop()
        prefix_a = f"{a_name}/{connection.settings_dict['NAME']}/"
        prefix_b = f"{b_name}/{connection.settings_dict['NAME']}/"
        for entry in os.listdir("/proc"):
            tag = process_tag(int(entry)) if entry.isdigit() else None
            if tag and tag.startswith((prefix_a, prefix_b)):
                try:
                    terminate(os.getpgid(int(entry)), 0)
                except ProcessLookupError:
                    pass
        mine.delete()
        HostRow.objects.filter(name__in=[a_name, b_name]).delete()


def main() -> int:
    rerun = rerun_in_private_postgres(__file__)
    if rerun is not None:
        return rerun
    os.environ["MAX_BOTS"] = str(max(SIZES) + 10)  # botctl start here checks it too
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "deia.settings")
    import django

    django.setup()
    from django.conf import settings

    low, high = settings.BOT_PORT_RANGE
    half = (high - low + 1) // 2
    if half < max(SIZES):
        print(f"BOT_PORT_RANGE {low}-{high} has fewer than {2 * max(SIZES)} ports", file=sys.stderr)
        return 1
    ports = ((low, low + half - 1), (low + half, high))
    stop = threading.Event()
    threading.Thread(target=ticker, args=(stop,), daemon=True).start()
    results: dict[int, list[dict]] = {}
    try:
        with tempfile.TemporaryDirectory(prefix="deia-failover-") as log_dir:
            for size in SIZES:
                results[size] = [one_failover(size, r, ports, Path(log_dir)) for r in range(repeats())]
    finally:
        stop.set()
    report(results)
    return 0


def report(results: dict[int, list[dict]]) -> None:
    print("## failover_bench (bench/failover_bench.py)\n")
    print(
        f"Two bots workers on simulated hosts of this machine; N echo bots on host A, then `kill -9` of A's worker, "
        f"runner template and runners. HOST_LEASE_SECONDS={LEASE}, HOST_HEARTBEAT_SECONDS={HEARTBEAT}, "
        f"BOT_FENCE_SECONDS={FENCE}, reconcile every 0.5 s; {repeats()} repeats per size, median (min to max), "
        f"seconds. Target: kill to all running elsewhere within the lease + 30 s ({LEASE + 30} s here). "
        f"Load average after: {load_average()}.\n"
    )
    print("| bots | kill to all running on B | kill to host.lost | host.lost to all running | target |")
    print("| ---: | ---: | ---: | ---: | ---: |")
    for size, runs in results.items():
        cells = [spread([r[key] for r in runs]) for key in ("total", "to_lost", "restart")]
        worst = max(r["total"] for r in runs)
        verdict = "met" if worst <= LEASE + 30 else "missed"
        print(f"| {size} | {cells[0]} | {cells[1]} | {cells[2]} | {LEASE + 30} s: {verdict} |")
    print(
        "\nWith the default 60 s lease the first two columns grow by 54 s; the restart column is what the "
        "surviving host adds (placement, backoff of 0.2 s, one start per bot through its worker's pool of 4)."
    )
    medians = {size: statistics.median(r["restart"] for r in runs) for size, runs in results.items()}
    print("Restart per bot (median): " + ", ".join(f"{s} bots {m / s:.2f} s" for s, m in medians.items()) + ".")


if __name__ == "__main__":
    raise SystemExit(main())
