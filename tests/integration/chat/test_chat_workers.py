"""Chats in gunicorn workers of their own, on the web's one address
(deia.adapters.gunicorn): the workers that accept connections hand a chat's connection
over to a chat worker, which runs at a lower CPU priority, and answer everything else
themselves."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import ssl
import subprocess
from pathlib import Path

import httpx
import pytest

from bots.models import ChatMessage
from tests.plugins.observability import WebApi
from tests.support.procs import PYTHON, ROOT, children, free_port, wait_for

CHAT_NICE = 5  # GUNICORN_CHAT_NICE's default


worker_pids = children  # a gunicorn master's workers


def holder(client: socket.socket, pids: set[int]) -> int | None:
    """Which of `pids` holds the server's end of `client`'s TCP connection."""
    client_port = client.getsockname()[1]
    server_port = client.getpeername()[1]
    inodes = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local_port, remote_port = (int(address.split(":")[1], 16) for address in fields[1:3])
        if local_port == server_port and remote_port == client_port:
            inodes.add(f"socket:[{fields[9]}]")
    for pid in pids:
        try:
            if any(os.readlink(fd) in inodes for fd in Path(f"/proc/{pid}/fd").iterdir()):
                return pid
        except (FileNotFoundError, ProcessLookupError):
            continue
    return None


def connect(url: str) -> socket.socket:
    host, port = url.removeprefix("http://").split(":")
    return socket.create_connection((host, int(port)), timeout=30)


def send_chat(sock: socket.socket, api, bot, message: str) -> None:
    body = f'{{"message": "{message}"}}'.encode()
    head = (
        f"POST /api/bots/{bot.pk}/messages HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"Authorization: {api.headers['Authorization']}\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    sock.sendall(head.encode() + body)


def read_response(sock: socket.socket) -> tuple[int, bytes]:
    """One whole response (with Content-Length or chunked) from a kept-alive connection."""
    data = b""

    def more() -> bytes:
        return sock.recv(65536) or pytest.fail(f"the connection closed mid-response: {data!r}")

    while b"\r\n\r\n" not in data:
        data += more()
    head, _, rest = data.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    length = re.search(rb"(?i)content-length: *(\d+)", head)
    if length:
        while len(rest) < int(length.group(1)):
            rest += more()
        return status, rest
    while not rest.endswith(b"0\r\n\r\n"):  # chunked: read to the last chunk
        rest += more()
    body, tail = b"", rest
    while (size := int(tail.split(b"\r\n", 1)[0], 16)) > 0:
        tail = tail.split(b"\r\n", 1)[1]
        body, tail = body + tail[:size], tail[size + 2 :]
    return status, body


def served_by(api, bot, master: int, message: str) -> int | None:
    """Chat on a connection of its own; the worker that answered it (200)."""
    with connect(api.url) as chat:
        send_chat(chat, api, bot, message)
        status, body = read_response(chat)
        assert status == 200, body
        return holder(chat, worker_pids(master))


def chat_workers(master: int) -> set[int]:
    """The workers that take chats: they lowered their priority by GUNICORN_CHAT_NICE."""
    return {pid for pid in worker_pids(master) if os.getpriority(os.PRIO_PROCESS, pid) == CHAT_NICE}


def test_a_chat_is_served_by_a_chat_worker_at_a_lower_priority_and_health_by_the_other(
    running_bot, web, gunicorn, fake_ollama
):
    api = web(workers=2)  # one worker for chats, one for the rest
    master = gunicorn.proc.pid
    bot, _ = running_bot()
    fake_ollama.latency = 3.0
    with connect(api.url) as chat, connect(api.url) as health:
        send_chat(chat, api, bot, "who serves me")
        wait_for(lambda: len(fake_ollama.chats()) == 1, timeout=10, what="the chat waiting on the LLM")
        health.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        assert read_response(health)[0] == 200

        workers = worker_pids(master)
        chat_worker, other = holder(chat, workers), holder(health, workers)
        assert chat_worker is not None and other is not None
        assert chat_worker != other
        assert chat_workers(master) == {chat_worker}
        assert os.getpriority(os.PRIO_PROCESS, other) == 0
        # The handed-over connection answers the chat, and stays with the chat worker.
        status, body = read_response(chat)
        assert status == 200, body
        assert ChatMessage.objects.filter(conversation=json.loads(body)["conversation"]).count() == 2
        chat.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        assert read_response(chat)[0] == 200
        assert holder(chat, worker_pids(master)) == chat_worker


def test_a_killed_chat_workers_replacement_takes_chats(running_bot, web, gunicorn):
    api = web(workers=2)
    master = gunicorn.proc.pid
    bot, _ = running_bot(backend="echo")
    (victim,) = wait_for(lambda: chat_workers(master), timeout=30, what="the chat worker started")
    os.kill(victim, signal.SIGKILL)

    def replaced():
        workers = worker_pids(master)
        return len(workers) == 2 and victim not in workers and chat_workers(master)

    (successor,) = wait_for(replaced, timeout=30, what="gunicorn to replace the chat worker with a chat worker")
    assert served_by(api, bot, master, "after the replacement") == successor


def test_after_a_reload_the_new_workers_take_chats(running_bot, web, gunicorn):
    # systemctl reload (SIGHUP): gunicorn forks a whole new set before it stops the old one.
    api = web(workers=2)
    master = gunicorn.proc.pid
    bot, _ = running_bot(backend="echo")
    old = wait_for(lambda: chat_workers(master) and worker_pids(master), timeout=30, what="the first set")
    os.kill(master, signal.SIGHUP)

    def reloaded():
        workers = worker_pids(master)
        return len(workers) == 2 and not workers & old and chat_workers(master)

    (successor,) = wait_for(reloaded, timeout=60, what="a new set of workers with a chat worker")
    assert served_by(api, bot, master, "after a reload") == successor


def test_with_no_chat_workers_every_worker_serves_chats(running_bot, web, gunicorn):
    api = web(workers=2, GUNICORN_CHAT_WORKERS="0")
    master = gunicorn.proc.pid
    bot, _ = running_bot(backend="echo")
    worker = served_by(api, bot, master, "one pool")
    assert worker is not None
    assert os.getpriority(os.PRIO_PROCESS, worker) == 0
    assert not chat_workers(master)


def test_with_tls_in_gunicorn_every_worker_serves_chats(running_bot, spawn, child_env, tmp_path):
    # A TLS session lives in the worker that accepted the connection: its socket cannot be
    # handed over, so with a certificate in gunicorn there are no chat workers.
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            *("openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"),
            *("-keyout", str(key), "-out", str(cert), "-days", "1", "-subj", "/CN=127.0.0.1"),
            *("-addext", "subjectAltName=IP:127.0.0.1"),
        ],
        check=True,
        capture_output=True,
    )
    port = free_port()
    env = {
        **child_env,
        "GUNICORN_BIND": f"127.0.0.1:{port}",
        "GUNICORN_WORKERS": "2",
        "GUNICORN_CMD_ARGS": f"--certfile {cert} --keyfile {key}",
    }
    proc = spawn([PYTHON, "-m", "gunicorn", "-c", "deploy/gunicorn.conf.py", "deia.asgi:application"], env, "tls")
    tls = ssl.create_default_context(cafile=str(cert))

    def health() -> bool:
        try:
            return httpx.get(f"https://127.0.0.1:{port}/health", verify=tls, timeout=5).status_code == 200
        except httpx.HTTPError:
            return False

    wait_for(lambda: health() or not proc.running(), timeout=30, what="gunicorn over TLS")
    assert proc.running(), proc.output()
    api = WebApi(f"https://127.0.0.1:{port}")
    bot, _ = running_bot(backend="echo")
    with httpx.Client(verify=tls, timeout=30) as client:
        for i in range(4):  # on new connections, whichever worker accepts them
            response = client.post(
                f"{api.url}/api/bots/{bot.pk}/messages",
                json={"message": f"over TLS {i}"},
                headers={**api.headers, "Connection": "close"},
            )
            assert response.status_code == 200, response.text
    assert not chat_workers(proc.pid)


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ("GUNICORN_CHAT_WORKERS=-1", "GUNICORN_CHAT_WORKERS: must be at least 0, got -1"),
        ("GUNICORN_CHAT_NICE=high", "GUNICORN_CHAT_NICE: expected a whole number, got 'high'"),
        ("GUNICORN_CHAT_NICE=25", "GUNICORN_CHAT_NICE: must be at most 19, got 25"),
    ],
)
def test_a_bad_chat_worker_setting_stops_the_web_with_one_line(child_env, setting, message):
    name, value = setting.split("=")
    env = {**child_env, "GUNICORN_BIND": f"127.0.0.1:{free_port()}", name: value}
    result = subprocess.run(
        [PYTHON, "-m", "gunicorn", "-c", "deploy/gunicorn.conf.py", "deia.asgi:application"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [f"configuration error: {message}"]
