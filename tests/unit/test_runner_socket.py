"""The runner's listening socket: every answer leaves at once (no Nagle delay)."""

from __future__ import annotations

import socket

from bots.runner.server import _listen


def test_the_runner_listens_with_tcp_named_so_asyncio_turns_nagle_off():
    sock = _listen("127.0.0.1", 0, "bot")
    try:
        # asyncio disables Nagle only on sockets whose protocol is IPPROTO_TCP; without it a
        # keep-alive client waited 40 ms (a delayed ACK) for every answer.
        assert sock.proto == socket.IPPROTO_TCP
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
    finally:
        sock.close()
