"""Port allocation: the lowest port that no bot holds and no program listens on."""

from __future__ import annotations

import socket

import pytest

from bots.lifecycle.process import can_bind, pick_port
from tests.support.procs import free_port


@pytest.fixture
def listener():
    sock = socket.socket()
    sock.bind(("127.0.0.1", free_port()))
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
