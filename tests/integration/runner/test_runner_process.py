"""The runner as an OS process: start-up failures, heartbeat, graceful SIGTERM."""

from __future__ import annotations

import asyncio
import signal
import socket
import subprocess
import threading

import httpx
import pytest

from bots.models import Bot
from tests.support.procs import PYTHON, ROOT, free_port, port_is_open, wait_for


def run_runbot(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    """Run `manage.py runbot` to completion (start-up failures exit at once)."""
    return subprocess.run(
        [PYTHON, "manage.py", "runbot", *args], env=env, cwd=ROOT, capture_output=True, text=True, timeout=60
    )


def test_sigterm_lets_the_chat_in_flight_finish_refuses_new_connections_and_exits_0(make_bot, runner, fake_ollama):
    bot = make_bot()
    url = runner(bot, BOT_STOP_GRACE="10")
    fake_ollama.latency = 2.0
    result: dict = {}
    thread = threading.Thread(
        target=lambda: result.update(
            r=httpx.post(f"{url}/chat", headers=url.auth, json={"message": "finish me"}, timeout=30)
        )
    )
    thread.start()
    wait_for(lambda: fake_ollama.chats(), what="the chat to reach the LLM")

    url.proc.popen.send_signal(signal.SIGTERM)

    wait_for(lambda: not port_is_open(url.port), timeout=2, what="the port to close")
    assert thread.is_alive(), "the chat should still be in flight"
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{url}/health", timeout=1)
    thread.join(20)
    assert result["r"].status_code == 200, url.proc.output()
    assert result["r"].json()["reply"] == "fake reply to: finish me"
    assert url.proc.popen.wait(15) == 0


def test_an_idle_runner_exits_0_on_sigterm(make_bot, runner):
    url = runner(make_bot())

    url.proc.popen.send_signal(signal.SIGTERM)

    assert url.proc.popen.wait(10) == 0
    assert not port_is_open(url.port)


def test_a_missing_model_exits_3_with_one_line_naming_the_model(make_bot, child_env, fake_ollama):
    bot = make_bot(model_name="llama9")
    port = free_port()

    done = run_runbot({**child_env, "OLLAMA_URL": fake_ollama.url}, str(bot.pk), "--port", str(port))

    assert done.returncode == 3
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert "'llama9'" in lines[0]
    assert "ollama pull llama9" in lines[0]
    assert fake_ollama.url in lines[0]
    assert not port_is_open(port)


def test_an_unknown_bot_exits_2_with_one_line(child_env):
    done = run_runbot(child_env, "no-such-bot", "--port", str(free_port()))

    assert done.returncode == 2
    assert done.stderr.strip() == "bot 'no-such-bot' not found (give its id or slug)"


def test_an_unreachable_llm_at_start_exits_1_with_one_line(make_bot, child_env):
    bot = make_bot()
    dead = f"http://127.0.0.1:{free_port()}"

    done = run_runbot({**child_env, "OLLAMA_URL": dead, "LLM_RETRIES": "0"}, bot.slug, "--port", str(free_port()))

    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert "not reachable" in lines[0] and dead in lines[0]


def test_a_port_in_use_exits_1_with_one_line(make_bot, child_env):
    bot = make_bot(backend="echo", model_name="echo")
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]

        done = run_runbot(child_env, str(bot.pk), "--port", str(port))

    assert done.returncode == 1
    assert done.stderr.strip().startswith(f"cannot listen on 127.0.0.1:{port}")
    assert len(done.stderr.strip().splitlines()) == 1


def test_the_heartbeat_updates_last_heartbeat_only_once_the_pid_matches(make_bot, runner, fake_ollama):
    bot = make_bot(system_prompt="old prompt")
    url = runner(bot, BOT_HEARTBEAT_INTERVAL="0.2")
    # The heartbeat also refreshes the system prompt: seeing the new one proves beats run.
    Bot.objects.filter(pk=bot.pk).update(system_prompt="new prompt")

    def sees_new_prompt() -> bool:
        httpx.post(f"{url}/chat", headers=url.auth, json={"message": "hi"}, timeout=10)
        return fake_ollama.chats()[-1].body["messages"][0]["content"] == "new prompt"

    wait_for(sees_new_prompt, timeout=10, interval=0.2, what="a heartbeat to refresh the prompt")
    bot.refresh_from_db()
    assert bot.last_heartbeat is None  # beats before the lifecycle records the pid match nothing

    Bot.objects.filter(pk=bot.pk).update(pid=url.proc.pid)

    wait_for(lambda: Bot.objects.get(pk=bot.pk).last_heartbeat, timeout=10, what="a heartbeat")
    first = Bot.objects.get(pk=bot.pk).last_heartbeat
    wait_for(lambda: Bot.objects.get(pk=bot.pk).last_heartbeat > first, timeout=10, what="a later heartbeat")


def test_the_runner_shuts_down_gracefully_when_its_bot_is_deleted(make_bot, runner):
    bot = make_bot(backend="echo", model_name="echo")
    url = runner(bot, BOT_HEARTBEAT_INTERVAL="0.2")

    Bot.objects.filter(pk=bot.pk).delete()

    assert url.proc.popen.wait(15) == 0
    assert not port_is_open(url.port)


def test_relay_chat_passes_the_runners_answer_through(make_bot, runner):
    from bots.runner.client import Target, relay_chat

    bot = make_bot(backend="echo", model_name="echo")
    url = runner(bot)
    target = Target(bot.slug, f"127.0.0.1:{url.port}", url.auth["X-Bot-Secret"])

    answer = asyncio.run(relay_chat(target, {"message": "ping"}, "relay-1", timeout=5))

    assert answer.status == 200
    assert answer.body["reply"] == "echo: ping"
    assert answer.body["request_id"] == "relay-1"
    again = {"message": "", "conversation": answer.body["conversation"]}
    assert asyncio.run(relay_chat(target, again, "relay-2", timeout=5)).status == 400


def test_an_inherited_prometheus_multiproc_dir_is_ignored(make_bot, runner, tmp_path):
    multiproc = tmp_path / "prometheus"
    multiproc.mkdir()
    bot = make_bot(backend="echo", model_name="echo")
    url = runner(bot, PROMETHEUS_MULTIPROC_DIR=str(multiproc))

    httpx.post(f"{url}/chat", headers=url.auth, json={"message": "hi"}, timeout=10)

    assert f'deia_bot_messages_total{{bot="{bot.slug}"}} 1.0' in httpx.get(f"{url}/metrics").text
    assert list(multiproc.iterdir()) == []  # nothing written into the web app's directory
    assert httpx.get(f"{url}/health").json()["pid"] == url.proc.pid  # exec kept the pid


def test_a_runner_listens_before_its_llm_check_and_answers_health_once_it_passes(make_bot, runner, fake_ollama):
    # A worker's first /health probe waits in the listen backlog while the runner checks its
    # model, and is answered the moment the runner serves (no refused connection, no retry).
    fake_ollama.hold_tags()
    url = runner(make_bot(backend="ollama", model_name="llama3.2"), wait=False)
    wait_for(lambda: any(r.path == "/api/tags" for r in fake_ollama.requests), timeout=30, what="the model check")
    assert port_is_open(url.port), "the port should accept connections during the model check"
    with socket.create_connection(("127.0.0.1", url.port), timeout=5) as early:
        early.sendall(f"GET /health HTTP/1.1\r\nHost: 127.0.0.1:{url.port}\r\nConnection: close\r\n\r\n".encode())
        early.settimeout(0.3)
        with pytest.raises(TimeoutError):
            early.recv(1)  # nothing answers while the check is held
        fake_ollama.release_tags()
        early.settimeout(30)
        answer = b""
        while chunk := early.recv(65536):
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 200"), answer[:200]
    assert url.proc.running()
