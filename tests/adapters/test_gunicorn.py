"""deia.adapters.gunicorn: pins gunicorn's logger and listener objects and uvicorn-worker's
CONFIG_KWARGS as the adapter uses them."""

from __future__ import annotations

import array
import asyncio
import inspect
import logging
import socket
from types import SimpleNamespace

import pytest
from gunicorn.config import Config
from gunicorn.sock import TCPSocket
from uvicorn.config import Config as Config_
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import Server as Server_
from uvicorn_worker import UvicornWorker

from deia.adapters import gunicorn as adapter
from deia.adapters.gunicorn import HttpProtocol, Logger, Worker
from deia.doors import is_chat_request
from tests.adapters.pins import assert_installed_as_pinned


@pytest.mark.parametrize("distribution", ["gunicorn", "uvicorn-worker"])
def test_the_versions_are_those_the_adapter_was_written_against(distribution):
    assert_installed_as_pinned(distribution)


@pytest.fixture
def gunicorn_loggers():
    """gunicorn's Logger reconfigures two process-wide loggers: put them back afterwards."""
    loggers = [logging.getLogger("gunicorn.error"), logging.getLogger("gunicorn.access")]
    saved = [(log.handlers[:], log.propagate, log.level) for log in loggers]
    yield
    for log, (handlers, propagate, level) in zip(loggers, saved, strict=True):
        log.handlers[:] = handlers
        log.propagate = propagate
        log.setLevel(level)


def test_the_logger_keeps_its_error_and_access_loggers_and_prefixes_them(monkeypatch, gunicorn_loggers):
    monkeypatch.setenv("LOG_SYSLOG_PREFIX", "true")
    config = Config()
    config.set("errorlog", "-")
    config.set("accesslog", "-")

    logger = Logger(config)

    assert logger.error_log is logging.getLogger("gunicorn.error")
    assert logger.access_log is logging.getLogger("gunicorn.access")
    line = logging.LogRecord("gunicorn.error", logging.ERROR, __file__, 1, "worker timeout", None, None)
    assert logger.error_log.handlers[0].format(line).startswith("<3>")


def test_uvicorn_worker_reads_uvicorns_settings_from_config_kwargs():
    assert "CONFIG_KWARGS" in vars(UvicornWorker)
    assert Worker.CONFIG_KWARGS["http"] == "deia.adapters.gunicorn:HttpProtocol"
    config = Config_(app=None, **Worker.CONFIG_KWARGS)
    config.load()
    assert config.http_protocol_class is HttpProtocol
    assert issubclass(HttpProtocol, HttpToolsProtocol)


def test_uvicorn_workers_serve_is_the_one_ours_replaces():
    # Ours is uvicorn-worker's with one change (a chat worker serves no socket): if theirs
    # changes, ours must be looked at again.
    source = inspect.getsource(UvicornWorker._serve)
    assert "server = Server(config=self.config)" in source
    assert "await server.serve(sockets=self.sockets)" in source
    assert "Arbiter.WORKER_BOOT_ERROR" in source


@pytest.mark.parametrize(
    ("head", "chat"),
    [
        (b"POST /api/bots/12/messages HTTP/1.1\r\nHost: x\r\n\r\n", True),
        (b"GET /api/bots/12/messages?page=2 HTTP/1.1\r\n", True),
        (b"POST /api/bots/12/messages HTTP/1.0\r\n", True),
        (b"POST /api/bots/12/messages", False),  # the request line not read whole: served here
        (b"POST /api/bots/12/start HTTP/1.1\r\n", False),
        (b"GET /api/bots HTTP/1.1\r\n", False),
        (b"GET /health HTTP/1.1\r\n", False),
        (b"POST http://x/api/bots/12/messages HTTP/1.1\r\n", False),  # absolute form
        (b"POST /api/bots/x/messages HTTP/1.1\r\n", False),
        (b"\x16\x03\x01 not http at all\r\n", False),
    ],
)
def test_which_first_reads_are_chats(head, chat):
    assert is_chat_request(head) is chat


class FakeArbiter:
    def __init__(self, *roles: str) -> None:
        self.WORKERS = {pid: SimpleNamespace(role=role, age=pid + 1) for pid, role in enumerate(roles)}
        self.worker_age = len(roles)


@pytest.fixture
def channel():
    handover = adapter.Handover()
    yield handover
    handover.sending.close()
    handover.receiving.close()


def test_roles_fill_the_chat_workers_first_and_replace_a_dead_one_in_kind(monkeypatch, channel):
    monkeypatch.setattr(adapter, "handover", channel)
    new = SimpleNamespace()
    adapter.assign_role(FakeArbiter(), new, 2)
    assert new.role == adapter.CHAT
    adapter.assign_role(FakeArbiter(adapter.CHAT, adapter.CHAT), new, 2)
    assert new.role == adapter.CONTROL
    adapter.assign_role(FakeArbiter(adapter.CHAT, adapter.CONTROL, adapter.CONTROL), new, 2)
    assert new.role == adapter.CHAT  # a chat worker died: its replacement takes chats
    monkeypatch.setattr(adapter, "handover", None)
    adapter.assign_role(FakeArbiter(), new, 2)
    assert new.role == adapter.CONTROL  # no channel (GUNICORN_CHAT_WORKERS=0): one pool


def test_after_a_reload_the_new_workers_get_chat_workers_of_their_own(monkeypatch, channel):
    monkeypatch.setattr(adapter, "handover", channel)
    arbiter = FakeArbiter(adapter.CHAT, adapter.CONTROL)  # the running set, about to be replaced
    adapter.reloading(arbiter)
    first, second = SimpleNamespace(age=3), SimpleNamespace(age=4)
    adapter.assign_role(arbiter, first, 1)
    arbiter.WORKERS[99] = first
    adapter.assign_role(arbiter, second, 1)
    assert (first.role, second.role) == (adapter.CHAT, adapter.CONTROL)


def hand_over_by_hand(channel, request: bytes) -> socket.socket:
    """What an accepting worker does: read a client's request, pass the socket and the bytes
    on, close its copy. Returns the client's end."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        client = socket.create_connection(listener.getsockname())
        accepted, _ = listener.accept()
    client.sendall(request)
    data = accepted.recv(65536)
    rights = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [accepted.fileno()]))]
    channel.sending.sendmsg([data], rights)
    accepted.close()
    return client


async def answer_ok(scope, receive, send) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]})
    await send({"type": "http.response.body", "body": b"ok"})


async def started(server: Server_, sockets: list) -> Server_:
    """What uvicorn's serve does before it loops: the lifespan, then the listeners."""
    server.config.load()
    server.lifespan = server.config.lifespan_class(server.config)
    await server.startup(sockets=sockets)
    return server


def uvicorn_config() -> Config_:
    return Config_(app=answer_ok, log_config=None, **Worker.CONFIG_KWARGS)


def test_a_chat_worker_shutting_down_serves_what_is_on_the_channel_and_takes_no_more(monkeypatch, channel):
    monkeypatch.setattr(adapter, "handover", channel)

    async def scenario() -> tuple[bytes, bool]:
        server = await started(adapter.ChatServer(config=uvicorn_config()), [])
        channel.adopt(server)
        # On the channel when the shutdown starts (max_requests, SIGTERM), not yet taken.
        client = hand_over_by_hand(channel, b"POST /api/bots/1/messages HTTP/1.1\r\nHost: a\r\n\r\n")
        await server.shutdown()
        still_reading = asyncio.get_running_loop().remove_reader(channel.receiving)
        client.settimeout(10)
        with client:
            return client.recv(100), still_reading

    answer, still_reading = asyncio.run(scenario())
    assert answer.startswith(b"HTTP/1.1 200 OK") and answer.endswith(b"ok")
    assert not still_reading


def test_a_worker_shutting_down_answers_the_chats_still_waiting_for_the_chat_workers(monkeypatch, channel):
    monkeypatch.setattr(adapter, "handover", channel)
    monkeypatch.setattr(HttpProtocol, "hands_over", True)
    channel.sending.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)  # fills after a few
    passed_on = []
    pass_on = channel.pass_on
    monkeypatch.setattr(channel, "pass_on", lambda protocol, data: (passed_on.append(1), pass_on(protocol, data)))

    async def scenario() -> list[bytes]:
        listener = socket.create_server(("127.0.0.1", 0))
        server = await started(Server_(config=uvicorn_config()), [listener])
        clients = [socket.create_connection(listener.getsockname()) for _ in range(12)]
        for i, client in enumerate(clients):
            head = f"POST /api/bots/{i}/messages HTTP/1.1\r\nHost: a\r\nContent-Length: 1000\r\n\r\n"
            client.sendall(head.encode() + b"x" * 1000)
        deadline = asyncio.get_running_loop().time() + 10
        while len(passed_on) < len(clients):
            assert asyncio.get_running_loop().time() < deadline, "the chats never reached the hand-over"
            await asyncio.sleep(0.01)
        assert channel.waiting, "a 4 KiB channel should have filled up"
        waiting = {protocol.transport.get_extra_info("peername")[1] for protocol, _ in channel.waiting}
        await server.shutdown()
        answers = []
        for client in clients:
            if client.getsockname()[1] in waiting:
                client.settimeout(10)
                answers.append(client.recv(100))
            client.close()
        listener.close()
        return answers

    answers = asyncio.run(scenario())
    assert answers
    assert all(answer.startswith(b"HTTP/1.1 200 OK") for answer in answers), answers
    assert not channel.waiting


def test_a_full_channel_queues_connections_and_hands_each_over_once_in_order(channel):
    """The chat workers fall behind: connections wait in the accepting worker, none is served
    twice or lost, and each arrives with its own first bytes and its own socket."""

    async def scenario() -> list[tuple[bytes, bytes]]:
        handover = channel
        handover.sending.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
        served_here: list[bytes] = []

        class Accepting(asyncio.Protocol):
            def connection_made(self, transport) -> None:
                self.transport = transport

            def data_received(self, data: bytes) -> None:
                handover.pass_on(self, data)

            def serve_here(self, data: bytes) -> None:
                served_here.append(data)

        loop = asyncio.get_running_loop()
        server = await loop.create_server(Accepting, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        clients = [socket.create_connection(("127.0.0.1", port)) for _ in range(20)]
        for i, client in enumerate(clients):
            client.sendall(f"POST /api/bots/{i}/messages HTTP/1.1\r\n".encode() + b"x" * 1500)
            await asyncio.sleep(0.01)  # one read each, in order
        deadline = loop.time() + 10
        while not handover.writer_on and loop.time() < deadline:
            await asyncio.sleep(0.01)
        assert handover.writer_on and handover.waiting, "a 4 KiB channel should have filled up"
        # A chat worker catches up: everything arrives, the queued ones once the channel has room.
        arrived = []
        while len(arrived) < len(clients) and loop.time() < deadline:
            try:
                data, rights, _, _ = handover.receiving.recvmsg(
                    adapter.HANDOVER_MAX, adapter.RIGHTS_SPACE, socket.MSG_DONTWAIT
                )
            except BlockingIOError:
                await asyncio.sleep(0.01)
                continue
            (fd,) = array.array("i", rights[0][2])
            with socket.socket(fileno=fd) as connection:
                connection.sendall(b"answered " + data.split(b" ")[1])
            arrived.append(data)
        answers = [(client.recv(100), client.close())[0] for client in clients]
        server.close()
        assert not handover.waiting and not handover.writer_on
        assert served_here == []
        return list(zip(arrived, answers, strict=True))

    pairs = asyncio.run(scenario())
    assert len(pairs) == 20
    for i, (data, answer) in enumerate(pairs):
        assert data.startswith(f"POST /api/bots/{i}/messages ".encode())
        assert answer == f"answered /api/bots/{i}/messages".encode()


def test_a_gunicorn_listener_passes_family_and_setsockopt_to_its_socket():
    config = Config()
    listener = TCPSocket(("127.0.0.1", 0), config, logging.getLogger("test"))
    try:
        assert listener.family == socket.AF_INET
        listener.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        assert listener.sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
    finally:
        listener.close()
