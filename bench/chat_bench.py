"""Benchmark of the chat data plane through the web address (not a test).

Real processes: gunicorn (uvicorn workers) serving the app, 10 bot runners, the fake
Ollama (in a process of its own for the slow scenarios). It runs against a private PostgreSQL cluster
(bench.support.private_postgres): five web workers' pools and ten runners' take most of the
shared server's 100 max_connections, and other suites' connections would make chats wait
for one (or fail to start a runner). Three scenarios:

1. Slow LLM: the fake answers after 5 s; 10 ollama bots with BOT_MAX_CONCURRENT_CHATS=100;
   1,000 chats sent at once through the web while /health, GET /api/bots and /admin/login/
   are probed from a process of its own: their worst wait, the chats' p95, and every
   answered chat's two rows. Then the default cap (16 per bot): the excess must be 429 at
   once, no 5xx, no timeout.
2. Fast LLM (echo bots, 0 ms): a fixed rate of chats across the 10 bots through the web,
   and the same rate straight to the runners: the web's added latency; then the peak rate,
   and CPU per message in the web and in the runners.
3. Time to first token through the web with streaming (fake Ollama, 0 ms, word by word).

    make bench BENCH=chat_bench
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import multiprocessing
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "deia.settings")

from bench.support import rerun_in_private_postgres  # noqa: E402

if __name__ == "__main__" and (_rerun := rerun_in_private_postgres(__file__)) is not None:
    raise SystemExit(_rerun)

import django  # noqa: E402

django.setup()

from django.contrib.auth import get_user_model  # noqa: E402

from bench.support import gunicorn, start_runner, stop_process_group  # noqa: E402
from bots.models import Backend, Bot, ChatMessage, Status  # noqa: E402
from tests.fakes.ollama import FakeOllama  # noqa: E402
from tests.support.procs import children, free_port, http_ok, wait_for  # noqa: E402
from tests.support.tokens import api_key  # noqa: E402

BOTS = 10
SLOW_LLM = 5.0
SLOW_CHATS = 1000
FAST_RATE = 200  # chats/s offered in the fixed-rate run
FAST_SECONDS = 10
TTFT_CHATS = 200


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))] if ordered else float("nan")


def cpu_seconds(pids: list[int]) -> float:
    total = 0.0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except FileNotFoundError:
            continue
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


class Fleet:
    """BOTS bots with a runner each, recorded as running so the web relays to them."""

    def __init__(self, prefix: str, backend: str, **runner_env: str) -> None:
        self.bots: list[Bot] = []
        self.procs = []
        self.direct: list[tuple[str, dict[str, str]]] = []
        model = "echo" if backend == Backend.ECHO else "llama3.2"
        for i in range(BOTS):
            bot = Bot.objects.create(name=f"{prefix}-{i}", slug=f"{prefix}-{i}", backend=backend, model_name=model)
            proc, url, headers = start_runner(bot.pk, **runner_env)
            Bot.objects.filter(pk=bot.pk).update(
                status=Status.RUNNING,
                port=int(url.rsplit(":", 1)[1]),
                host="127.0.0.1",
                pid=proc.pid,
                chat_secret=headers["X-Bot-Secret"],
            )
            self.bots.append(bot)
            self.procs.append(proc)
            self.direct.append((url, headers))

    def stop(self) -> None:
        for proc in self.procs:
            stop_process_group(proc)
        for bot in self.bots:
            bot.delete()


@contextlib.contextmanager
def fake_process(latency: float):
    """The fake Ollama in a process of its own (its base URL): a thousand handler threads in
    this one would share the GIL with the load generator."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.fakes.ollama", "--port", str(port), "--latency", str(latency)],
        cwd=ROOT,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: http_ok(f"{url}/"), timeout=30, what="fake Ollama")
        yield url
    finally:
        stop_process_group(proc)


async def probe(client: httpx.AsyncClient, web: str, headers: dict, stop, ready=None) -> dict[str, float]:
    """Worst wait of each control-plane path while the chats are in flight (until `stop` is set)."""
    worst = {"/health": 0.0, "/api/bots": 0.0, "/admin/login/": 0.0}
    while not stop.is_set():
        for path in worst:
            began = time.perf_counter()
            for attempt in range(2):
                try:
                    response = await client.get(f"{web}{path}", headers=headers if path == "/api/bots" else {})
                    break
                except httpx.RemoteProtocolError:
                    # A keep-alive connection the server closed as we reused it: ask again,
                    # counting the time from the first try.
                    if attempt:
                        raise
            response.raise_for_status()
            worst[path] = max(worst[path], time.perf_counter() - began)
        if ready is not None and not ready.is_set():
            ready.set()  # one round answered: the baseline before the burst
        await asyncio.sleep(0.05)
    return worst


def probe_in_own_process(web: str, headers: dict, stop, ready, results) -> None:
    """The prober's process: an operator's client, not one more task on the loop of the
    generator, whose thousand connections would delay each probe's own steps."""

    async def run() -> dict[str, float]:
        async with httpx.AsyncClient(timeout=30) as client:
            return await probe(client, web, headers, stop, ready)

    results.put(asyncio.run(run()))


@contextlib.contextmanager
def prober(web: str, headers: dict):
    """Probes from a process of its own while the block runs; yields a dict filled with the
    worst waits when the block ends."""
    context = multiprocessing.get_context("spawn")  # no fork of this threaded process
    stop, ready, results = context.Event(), context.Event(), context.Queue()
    process = context.Process(target=probe_in_own_process, args=(web, headers, stop, ready, results), daemon=True)
    process.start()
    worst: dict[str, float] = {}
    try:
        if not ready.wait(60):
            raise RuntimeError(f"the prober answered no round within 60 s (exit code {process.exitcode})")
        yield worst
    finally:
        stop.set()
        try:
            worst.update(results.get(timeout=60))
        finally:
            process.join(10)
            if process.is_alive():
                process.kill()


async def post_json(base: str, path: str, body: dict, headers: dict, timeout: float) -> tuple[int, dict]:
    """POST on a connection of its own, written by hand: (status, JSON body or {}).

    For the thousand-chat burst. One httpx client with a thousand requests in flight spends
    O(n^2) on its pool's bookkeeping: against the fake Ollama alone (5 s), 1,000 requests
    at once took 55 to 120 s through one httpx client, 12 s through twenty, and 6.3 s this
    way; the load generator would be what the burst measured.
    """
    host, port = base.removeprefix("http://").split(":")
    data = json.dumps(body).encode()
    lines = [f"POST {path} HTTP/1.1", f"Host: {host}:{port}", "Content-Type: application/json"]
    lines += [f"Content-Length: {len(data)}", "Connection: close", *(f"{k}: {v}" for k, v in headers.items())]
    reader, writer = await asyncio.wait_for(asyncio.open_connection(host, int(port)), timeout)
    try:
        writer.write("\r\n".join(lines).encode() + b"\r\n\r\n" + data)
        raw = await asyncio.wait_for(reader.read(), timeout)
    finally:
        writer.close()
    head, _, payload = raw.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    if b"transfer-encoding: chunked" in head.lower():
        chunks, rest = [], payload
        while rest:
            size, _, rest = rest.partition(b"\r\n")
            if not int(size, 16):
                break
            chunks.append(rest[: int(size, 16)])
            rest = rest[int(size, 16) + 2 :]
        payload = b"".join(chunks)
    try:
        parsed = json.loads(payload)
    except ValueError:
        parsed = {}
    return status, parsed if isinstance(parsed, dict) else {}


async def slow_burst(web: str, headers: dict, bots: list[Bot], chats: int) -> tuple[list, float]:
    """The chats of the burst, all at once: (status, error, seconds, conversation) each, and
    the burst's wall time."""

    async def one(i: int):
        bot = bots[i % len(bots)]
        began = time.perf_counter()
        try:
            status, body = await post_json(
                web, f"/api/bots/{bot.pk}/messages", {"message": f"slow chat {i}"}, headers, timeout=120
            )
        except (TimeoutError, OSError, ValueError, IndexError) as exc:
            return ("error", type(exc).__name__, time.perf_counter() - began, None)
        return (status, body.get("error"), time.perf_counter() - began, body.get("conversation"))

    began = time.perf_counter()
    results = await asyncio.gather(*(one(i) for i in range(chats)))
    return results, time.perf_counter() - began


async def fixed_rate(targets: list[tuple[str, dict]], rate: int, seconds: int) -> tuple[list[float], int, float]:
    """Open loop: `rate` chats/s spread over the targets for `seconds`; latencies in ms.

    Each chat on a connection of its own (post_json): chats pile up in flight when the
    server falls behind, and one httpx pool would then be the bottleneck."""
    latencies: list[float] = []
    failures = 0

    async def one(i: int) -> None:
        nonlocal failures
        url, headers = targets[i % len(targets)]
        parts = urlsplit(url)
        began = time.perf_counter()
        try:
            body = {"message": f"fast chat {i}"}
            status, _ = await post_json(f"http://{parts.netloc}", parts.path, body, headers, timeout=30)
        except (TimeoutError, OSError, ValueError, IndexError) as exc:
            print(f"bench: chat {i} to {url}: {type(exc).__name__}", file=sys.stderr)
            failures += 1
            return
        if status == 200:
            latencies.append((time.perf_counter() - began) * 1000)
        else:
            failures += 1

    tasks = []
    began = time.perf_counter()
    for i in range(rate * seconds):
        delay = began + i / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.ensure_future(one(i)))
    await asyncio.gather(*tasks)
    wall = time.perf_counter() - began
    return latencies, failures, wall


async def peak(targets: list[tuple[str, dict]], concurrency: int, seconds: float) -> tuple[int, float]:
    """Closed loop: `concurrency` clients chatting back to back; (answered, seconds)."""
    done = 0
    deadline = time.perf_counter() + seconds
    async with httpx.AsyncClient(timeout=30) as client:

        async def loop(n: int) -> None:
            nonlocal done
            i = n
            while time.perf_counter() < deadline:
                url, headers = targets[i % len(targets)]
                try:
                    response = await client.post(url, json={"message": f"peak {i}"}, headers=headers)
                except httpx.HTTPError as exc:
                    print(f"bench: peak chat {i}: {type(exc).__name__}", file=sys.stderr)
                else:
                    done += response.status_code == 200
                i += concurrency

        began = time.perf_counter()
        await asyncio.gather(*(loop(n) for n in range(concurrency)))
        return done, time.perf_counter() - began


def machine_ticks() -> tuple[int, int]:
    """(busy, total) clock ticks of the whole machine, from /proc/stat."""
    ticks = [int(field) for field in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return sum(ticks) - ticks[3] - ticks[4], sum(ticks)  # idle and iowait are not busy


def machine_peak(targets, web_pids: list[int], runner_pids: list[int]) -> tuple[float, float, float, float, float]:
    """The closed-loop peak through `targets`: msg/s, and CPU ms per message of the web, the
    runners and the whole machine, and the machine's busy share (%)."""
    web0, runners0, (busy0, total0) = cpu_seconds(web_pids), cpu_seconds(runner_pids), machine_ticks()
    answered, wall = asyncio.run(peak(targets, 32, FAST_SECONDS))
    busy1, total1 = machine_ticks()
    per = 1000 / max(answered, 1)
    return (
        answered / wall,
        (cpu_seconds(web_pids) - web0) * per,
        (cpu_seconds(runner_pids) - runners0) * per,
        (busy1 - busy0) / os.sysconf("SC_CLK_TCK") * per,
        (busy1 - busy0) / max(total1 - total0, 1) * 100,
    )


async def first_tokens(web: str, headers: dict, bots: list[Bot], chats: int) -> list[float]:
    ttft: list[float] = []
    async with httpx.AsyncClient(timeout=30) as client:
        for i in range(chats):
            bot = bots[i % len(bots)]
            began = time.perf_counter()
            body = {"message": f"stream number {i} please", "stream": True}
            async with client.stream("POST", f"{web}/api/bots/{bot.pk}/messages", json=body, headers=headers) as r:
                async for line in r.aiter_lines():
                    if line.startswith("event: chunk") and len(ttft) <= i:
                        ttft.append((time.perf_counter() - began) * 1000)
    return ttft


def main() -> int:
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # a thousand sockets each way
    user, _ = get_user_model().objects.get_or_create(username="bench-chat", defaults={"is_superuser": True})
    headers = {"Authorization": f"Token {api_key(user)}"}
    lines: list[str] = []
    fake = FakeOllama().start()
    stack = contextlib.ExitStack()
    try:
        # --- 1. slow LLM -------------------------------------------------------------
        print("bench: slow LLM, 1,000 chats at once", file=sys.stderr)
        slow_fake = stack.enter_context(fake_process(SLOW_LLM))
        slow = Fleet("bench-slow", Backend.OLLAMA, OLLAMA_URL=slow_fake, BOT_MAX_CONCURRENT_CHATS="100")
        try:
            with gunicorn(CHAT_MAX_CONCURRENT_PER_USER="2000", API_THROTTLE_USER="off") as web:
                with prober(web, headers) as worst:
                    results, wall = asyncio.run(slow_burst(web, headers, slow.bots, SLOW_CHATS))
                ok = [r for r in results if r[0] == 200]
                stored = ChatMessage.objects.filter(conversation__in=[r[3] for r in ok]).count()
                times = [r[2] for r in ok]
                other = sorted({str(r[:2]) for r in results if r[0] != 200})
        finally:
            slow.stop()
        # The same kind of burst against the default cap: the runners refuse the excess.
        capped = Fleet("bench-capped", Backend.OLLAMA, OLLAMA_URL=slow_fake)
        try:
            with gunicorn(CHAT_MAX_CONCURRENT_PER_USER="2000", API_THROTTLE_USER="off") as web:
                capped_results, _ = asyncio.run(slow_burst(web, headers, capped.bots, 400))
        finally:
            capped.stop()
        codes = statistics.multimode([r[0] for r in capped_results])
        refused = [r for r in capped_results if r[0] == 429]
        bad = [r for r in capped_results if r[0] not in (200, 429)]
        lines += [
            "### 1. Slow LLM: 1,000 chats in flight\n",
            f"Fake Ollama answering after {SLOW_LLM:g} s, {BOTS} ollama bots with BOT_MAX_CONCURRENT_CHATS=100, "
            f"{SLOW_CHATS} chats sent at once through the web (gunicorn, {os.cpu_count() * 2 + 1} uvicorn workers, "
            f"{os.cpu_count() + 1} of them taking the chats at nice 5: GUNICORN_CHAT_WORKERS, GUNICORN_CHAT_NICE), "
            "while /health, GET /api/bots and /admin/login/ are requested in a loop by a process of its own "
            "(an operator's client, not one more task on the generator's loop).\n",
            "| measure | value | target |",
            "| --- | ---: | --- |",
        ]
        for path, seconds in worst.items():
            verdict = "met" if seconds < 0.5 else "NOT met"
            lines.append(f"| worst wait of {path} during the burst | {seconds * 1000:.0f} ms | < 500 ms: {verdict} |")
        p95 = percentile(times, 95)
        verdict = "met" if p95 < SLOW_LLM + 0.1 else "NOT met"
        lines += [
            f"| chats answered 200 | {len(ok)} of {SLOW_CHATS} | all |",
            f"| chat p50 / p95 / max | {percentile(times, 50):.3f} / {p95:.3f} / {max(times or [0]):.3f} s "
            f"| p95 < {SLOW_LLM + 0.1:g} s: {verdict} |",
            f"| rows stored for the answered chats | {stored} (= 2 x {len(ok)}: {stored == 2 * len(ok)}) | 2 each |",
            f"| other answers | {', '.join(other) or 'none'} | none |",
            f"| wall time of the burst | {wall:.2f} s | |",
            f"| default cap (16 per bot), 400 chats at once | {len(refused)} answered 429 at once, "
            f"{len(bad)} 5xx or errors, most common status {codes} | excess 429, no 5xx |",
            "",
        ]

        # --- 2. fast LLM -------------------------------------------------------------
        print("bench: fast LLM, messages/s", file=sys.stderr)
        fast = Fleet("bench-fast", Backend.ECHO)
        try:
            # bench.asgi: the real application, plus the chat path's floor (bench/bare_chat.py).
            app = "bench.asgi:application"
            with gunicorn(app, CHAT_MAX_CONCURRENT_PER_USER="2000", API_THROTTLE_USER="off") as web:
                via_web = [(f"{web}/api/bots/{b.pk}/messages", headers) for b in fast.bots]
                via_floor = [(f"{web}/bench/bare-chat/{b.pk}", headers) for b in fast.bots]
                direct = [(f"{url}/chat", h) for url, h in fast.direct]
                asyncio.run(fixed_rate(via_web, 50, 2))  # warm every worker's client and pool
                asyncio.run(fixed_rate(via_floor, 50, 2))
                web_ms, web_failed, web_wall = asyncio.run(fixed_rate(via_web, FAST_RATE, FAST_SECONDS))
                direct_ms, direct_failed, _ = asyncio.run(fixed_rate(direct, FAST_RATE, FAST_SECONDS))
                gunicorn_pid = [p for p in children(os.getpid()) if p not in {r.pid for r in fast.procs}]
                web_pids = [c for g in gunicorn_pid for c in children(g)] + gunicorn_pid
                runner_pids = [r.pid for r in fast.procs]
                web_peak = machine_peak(via_web, web_pids, runner_pids)
                # What bounds it: the same peak through the floor and straight to the runners,
                # with every process's CPU on the machine (this generator's too) per message.
                bounds = [("the web (above)", *web_peak)]
                bounds.append(("the floor: bench/bare_chat.py", *machine_peak(via_floor, web_pids, runner_pids)))
                bounds.append(("no web: straight to the runners", *machine_peak(direct, web_pids, runner_pids)))
        finally:
            fast.stop()
        added50 = percentile(web_ms, 50) - percentile(direct_ms, 50)
        added95 = percentile(web_ms, 95) - percentile(direct_ms, 95)
        sustained = len(web_ms) / web_wall
        verdict = "met" if sustained >= 200 and added95 < 20 and not web_failed else "NOT met"
        lines += [
            "### 2. Fast LLM: messages per second through the web\n",
            f"{BOTS} echo bots (0 ms LLM); {FAST_RATE} chats/s offered for {FAST_SECONDS} s at a fixed rate, "
            "through the web and then straight to the runners (same rate, same bots); then 32 clients back "
            "to back for the peak.\n",
            "| measure | p50 ms | p95 ms | p99 ms |",
            "| --- | ---: | ---: | ---: |",
            f"| through the web at {FAST_RATE}/s | {percentile(web_ms, 50):.1f} | {percentile(web_ms, 95):.1f} "
            f"| {percentile(web_ms, 99):.1f} |",
            f"| straight to the runners at {FAST_RATE}/s | {percentile(direct_ms, 50):.1f} "
            f"| {percentile(direct_ms, 95):.1f} | {percentile(direct_ms, 99):.1f} |",
            f"| added by the web | {added50:.1f} | {added95:.1f} | |",
            "",
            "| measure | value |",
            "| --- | ---: |",
            f"| sustained through the web | {sustained:.0f} msg/s, {web_failed} failed |",
            f"| straight to the runners, failed | {direct_failed} |",
            f"| peak through the web (32 clients) | {web_peak[0]:.0f} msg/s |",
            f"| CPU per message at the peak: web | {web_peak[1]:.2f} ms |",
            f"| CPU per message at the peak: runners | {web_peak[2]:.2f} ms |",
            "",
            f"Target: at least 200 msg/s with added p95 under 20 ms: {verdict}. The peak is bound by CPU: "
            "web, runners, PostgreSQL and this load generator share the 2 cores.\n",
            "What bounds the peak: 32 clients back to back for "
            f"{FAST_SECONDS} s each way, CPU per message of the web, the runners and the whole machine "
            "(/proc/stat: every process, this generator, PostgreSQL and Redis included). The floor is "
            "the chat's own work with no framework (bench/bare_chat.py: the same token, permission, "
            "visibility, running check, user slot and pooled relay), on the same gunicorn workers. "
            "200 msg/s on 2 cores leaves 10 ms of the machine's CPU per message.\n",
            "| path | peak msg/s | web ms | runners ms | machine ms | machine busy |",
            "| --- | ---: | ---: | ---: | ---: | ---: |",
            *(
                f"| {name} | {rate:.0f} | {web_ms:.2f} | {runner_ms:.2f} | {all_ms:.2f} | {busy:.0f} % |"
                for name, rate, web_ms, runner_ms, all_ms, busy in bounds
            ),
            "",
        ]

        # --- 3. time to first token ------------------------------------------------------
        print("bench: time to first token", file=sys.stderr)
        fake.latency = 0.0
        streaming = Fleet("bench-stream", Backend.OLLAMA, OLLAMA_URL=fake.url)
        try:
            with gunicorn(API_THROTTLE_USER="off") as web:
                asyncio.run(first_tokens(web, headers, streaming.bots, 10))
                ttft = asyncio.run(first_tokens(web, headers, streaming.bots, TTFT_CHATS))
        finally:
            streaming.stop()
        lines += [
            "### 3. Time to first token, streamed through the web\n",
            f"{TTFT_CHATS} streamed chats one after another (fake Ollama, 0 ms, word by word): from the request "
            "to the first `chunk` event at the client.\n",
            f"p50 {percentile(ttft, 50):.1f} ms, p95 {percentile(ttft, 95):.1f} ms.\n",
        ]
    finally:
        stack.close()
        fake.stop()
    print("## Chat data plane (bench/chat_bench.py)\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
