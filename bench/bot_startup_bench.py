"""Bot start-up time and runner memory, measured through the lifecycle's own start path.

Runs what a worker runs (bots.lifecycle.transitions.start_bot: claim, port, spawn
`manage.py runbot`, wait for /health) N times against a fake Ollama, then stops the bot.
Prints the median and p95 of the recorded startup_seconds and the runner's resident
memory (VmRSS) after one chat. Not run by the tests.

    Usage: make bench BENCH=bot_startup_bench (or env $(TEST_ENV) .venv/bin/python bench/bot_startup_bench.py -n 20)
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=20, help="number of starts (default 20)")
    args = parser.parse_args()

    from tests.fakes.ollama import FakeOllama

    fake = FakeOllama().start()
    os.environ["OLLAMA_URL"] = fake.url  # the runner inherits it, as from a worker's env
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "deia.settings")
    import django

    django.setup()
    import httpx
    from django.core.management import call_command

    from bots.lifecycle import transitions
    from bots.models import Bot, DesiredState, Status

    call_command("migrate", verbosity=0)
    bot, _ = Bot.objects.update_or_create(
        slug="bench-startup", defaults={"name": "bench-startup", "model_name": "llama3.2"}
    )
    times: list[float] = []
    rss: list[float] = []
    try:
        for _ in range(args.n):
            Bot.objects.filter(pk=bot.pk).update(desired_state=DesiredState.RUNNING, start_failures=0)
            outcome = transitions.start_bot(bot.pk)
            bot.refresh_from_db()
            if outcome != "started" or bot.status != Status.RUNNING:
                print(f"start failed: {outcome}: {bot.last_error}", file=sys.stderr)
                return 1
            times.append(bot.startup_seconds)
            secret = {"X-Bot-Secret": bot.chat_secret}
            httpx.post(
                f"http://{bot.address}/chat", json={"message": "hello"}, headers=secret, timeout=10
            ).raise_for_status()
            rss.append(rss_mib(bot.pid))
            Bot.objects.filter(pk=bot.pk).update(desired_state=DesiredState.STOPPED)
            transitions.stop_bot(bot.pk)
    finally:
        Bot.objects.filter(pk=bot.pk).update(desired_state=DesiredState.STOPPED)
        transitions.stop_bot(bot.pk)
        Bot.objects.filter(pk=bot.pk).delete()
        fake.stop()
    times.sort()
    p95 = times[min(len(times) - 1, round(0.95 * (len(times) - 1)))]
    median = statistics.median(times)
    print("## Bot start-up (bench/bot_startup_bench.py)\n")
    print(
        "The lifecycle's own start path (claim under the row lock, port, spawn `manage.py runbot`, "
        f"wait for /health) {len(times)} times for an ollama bot against the fake Ollama, then stop.\n"
    )
    print("| measure | value |")
    print("| --- | ---: |")
    print(f"| start-up median | {median:.3f} s |")
    print(f"| start-up p95 | {p95:.3f} s |")
    print(f"| start-up max | {times[-1]:.3f} s |")
    print(f"| runner VmRSS after one chat (median) | {statistics.median(rss):.1f} MiB |")
    verdict = "met" if p95 < 0.5 else "NOT met"
    print(f"\nBot start p95 {p95:.3f} s (target < 0.5 s; the guide's < 5 s): {verdict}.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
