"""deia.adapters.gunicorn: pins gunicorn's logger and listener objects and uvicorn-worker's
CONFIG_KWARGS as the adapter uses them."""

from __future__ import annotations

import logging
import socket

import pytest
from gunicorn.config import Config
from gunicorn.sock import TCPSocket
from uvicorn_worker import UvicornWorker

from deia.adapters.gunicorn import Logger, Worker
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
    assert Worker.CONFIG_KWARGS["http"] == "httptools"


def test_a_gunicorn_listener_passes_family_and_setsockopt_to_its_socket():
    config = Config()
    listener = TCPSocket(("127.0.0.1", 0), config, logging.getLogger("test"))
    try:
        assert listener.family == socket.AF_INET
        listener.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        assert listener.sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
    finally:
        listener.close()
