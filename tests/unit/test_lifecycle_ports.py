"""Port allocation: the lowest port that no bot holds and no program listens on."""

from __future__ import annotations

import random
import socket

import pytest

from bots.lifecycle.process import can_bind, pick_port


def quiet_port(span: int = 6) -> int:
    """A port below the kernel's ephemeral range whose next `span` ports are all free.

    Ports handed out by bind(0) are ephemeral: any outgoing connection may take the one
    after it at any moment, which made "the lowest free port" flaky.
    """
    for _ in range(200):
        base = random.randint(20000, 29000)
        if all(can_bind(port, "127.0.0.1") for port in range(base, base + span)):
            return base
    raise AssertionError("no quiet port range found")


@pytest.fixture
def listener():
    sock = socket.socket()
    sock.bind(("127.0.0.1", quiet_port()))
    sock.listen(1)
    yield sock.getsockname()[1]
    sock.close()


def test_the_lowest_free_port_of_the_range_is_chosen(listener):
    low = listener + 1
    assert pick_port(set(), (low, low + 5)) == low


def test_a_port_held_by_another_bot_is_skipped(listener):
    low = listener + 1
    assert pick_port({low, low + 1}, (low, low + 5)) == low + 2


def test_a_port_another_program_listens_on_is_skipped(listener):
    assert not can_bind(listener, "127.0.0.1")
    assert pick_port(set(), (listener, listener + 3)) != listener


def test_a_full_range_gives_no_port(listener):
    assert pick_port(set(), (listener, listener)) is None
