"""gunicorn's own log lines (start-up, worker timeouts and crashes, its access log) with the
syslog priority prefix the app's lines carry when LOG_SYSLOG_PREFIX is on (deia.logs), so a
worker timeout reaches the journal at err, not info."""

from __future__ import annotations

import logging

from gunicorn import glogging

from deia.config import ConfigError, Env, fail
from deia.logs import syslog_priority


class _Prefixed(logging.Formatter):
    def __init__(self, inner: logging.Formatter | None) -> None:
        super().__init__()
        self.inner = inner or logging.Formatter()

    def format(self, record: logging.LogRecord) -> str:
        return f"<{syslog_priority(record.levelno)}>{self.inner.format(record)}"


class Logger(glogging.Logger):
    def setup(self, cfg) -> None:
        super().setup(cfg)
        try:
            prefix = Env().bool("LOG_SYSLOG_PREFIX", False)
        except ConfigError as err:
            fail(err)
        if prefix:
            for log in (self.error_log, self.access_log):
                for handler in log.handlers:
                    handler.setFormatter(_Prefixed(handler.formatter))
