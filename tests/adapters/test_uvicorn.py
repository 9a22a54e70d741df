"""bots.runner.uvicorn_adapter: pins uvicorn's Server as the runner uses it (SIGTERM reaches
handle_exit while it serves, should_exit stops it gracefully, the re-raised signal meets
the no-op handler)."""

from __future__ import annotations

import asyncio
import os
import signal
import socket

import pytest
import uvicorn

from bots.runner.uvicorn_adapter import Server, ignore_reraised_signals
from tests.adapters.pins import assert_installed_as_pinned


def test_uvicorn_is_the_version_the_adapter_was_written_against():
    assert_installed_as_pinned("uvicorn")


async def app(scope, receive, send):
    await send({"type": "http.response.start", "status": 204, "headers": []})
    await send({"type": "http.response.body", "body": b""})


@pytest.fixture
def listening():
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)
    yield sock
    sock.close()


@pytest.fixture
def signal_handlers():
    """The test's process keeps its own handlers whatever happens."""
    saved = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
    yield
    for sig, handler in saved.items():
        signal.signal(sig, handler)


def config() -> uvicorn.Config:
    return uvicorn.Config(app, lifespan="off", http="httptools", loop="asyncio", log_config=None, access_log=False)


async def serve_until(server: Server, sock: socket.socket, stop) -> None:
    serving = asyncio.ensure_future(server.serve(sockets=[sock]))
    while not server.started:
        await asyncio.sleep(0.01)
    stop()
    try:
        await asyncio.wait_for(serving, timeout=10)
    finally:
        server.stop()


def test_sigterm_reaches_the_hook_then_stops_the_server_and_its_reraise_is_harmless(listening, signal_handlers):
    heard = []
    server = Server(config(), on_exit_signal=heard.append)
    ignore_reraised_signals()

    asyncio.run(serve_until(server, listening, lambda: os.kill(os.getpid(), signal.SIGTERM)))

    assert heard == [signal.SIGTERM]
    assert server.should_exit


def test_stop_ends_serving_gracefully_without_a_signal(listening, signal_handlers):
    heard = []
    server = Server(config(), on_exit_signal=heard.append)

    asyncio.run(serve_until(server, listening, server.stop))

    assert heard == []
