"""Request ids that follow one chat across processes, and the log formatting that prints them.

A request id enters at the web (an incoming X-Request-ID is kept if it is well formed,
otherwise one is made), lives in a context variable for the length of the request, is
returned in the response, and is sent on with the chat to the bot runner and from there
to the LLM. Every log line carries it, so one grep follows a chat through every process.
"""

from __future__ import annotations

import contextvars
import logging
import re
import time
import uuid

from pythonjsonlogger.json import JsonFormatter as _BaseJsonFormatter

from deia.redact import redact

REQUEST_ID_HEADER = "X-Request-ID"
_request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")
# Accept a caller's id only if it is short and printable, so it cannot forge log lines.
_VALID_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


def new_request_id(incoming: str | None = None) -> str:
    if incoming and _VALID_ID.match(incoming):
        return incoming
    return uuid.uuid4().hex


def get_request_id() -> str:
    return _request_id.get()


def set_request_id(value: str) -> contextvars.Token:
    return _request_id.set(value)


def reset_request_id(token: contextvars.Token) -> None:
    _request_id.reset(token)


class RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            record.request_id = get_request_id()
        return True


def _iso_utc(record: logging.LogRecord) -> str:
    # One unambiguous timestamp for every process on every host: ISO 8601, UTC, milliseconds.
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z"


def syslog_priority(levelno: int) -> int:
    """The syslog priority journald files a line under: err, warning, info or debug."""
    if levelno >= logging.ERROR:
        return 3
    if levelno >= logging.WARNING:
        return 4
    return 6 if levelno >= logging.INFO else 7


class SyslogPrefix:
    """With syslog_prefix=True a line starts with `<N>` (sd-daemon(3)): journald, whose
    SyslogLevelPrefix= is on by default, strips it and stores the line at that priority, so
    `journalctl -p err` finds errors. The rest of the line is unchanged (pure JSON)."""

    def __init__(self, *args, syslog_prefix: bool = False, **kwargs) -> None:
        self.syslog_prefix = syslog_prefix
        super().__init__(*args, **kwargs)

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        return f"<{syslog_priority(record.levelno)}>{line}" if self.syslog_prefix else line


# Attributes every LogRecord has; anything else on a record came from `extra=`.
_RECORD_ATTRS = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "request_id", "taskName"}


class JsonFormatter(SyslogPrefix, _BaseJsonFormatter):
    """One JSON object per line: time, level, logger, message, request_id and every `extra` field."""

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("fmt", "%(asctime)s %(levelname)s %(name)s %(message)s %(request_id)s")
        kwargs.setdefault("rename_fields", {"asctime": "time", "levelname": "level", "name": "logger"})
        super().__init__(*args, **kwargs)

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        return _iso_utc(record)

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


# C0 and C1 control characters, DEL and the Unicode line breaks: printed as escapes in text
# logs, so a value holding a newline (a username, a bot's answer) cannot start a new line.
_CONTROL = {c: f"\\x{c:02x}" for c in [*range(0x20), *range(0x7F, 0xA0)]} | {
    ord("\n"): "\\n",
    ord("\r"): "\\r",
    ord("\t"): "\\t",
    0x2028: "\\u2028",
    0x2029: "\\u2029",
}


def escape_controls(text: str) -> str:
    return text.translate(_CONTROL)


class TextFormatter(SyslogPrefix, logging.Formatter):
    """For people (LOG_FORMAT=text): the message, then the `extra` fields as key=value."""

    def __init__(self, **kwargs) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s [%(request_id)s] %(message)s", **kwargs)

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        return _iso_utc(record)

    def formatMessage(self, record: logging.LogRecord) -> str:
        if not hasattr(record, "request_id"):
            record.request_id = get_request_id()
        line = super().formatMessage(record)
        # Before any traceback, which logging.Formatter.format appends after this.
        extra = {k: v for k, v in record.__dict__.items() if k not in _RECORD_ATTRS and not k.startswith("_")}
        if extra:
            line += " " + " ".join(f"{k}={v}" for k, v in extra.items())
        return escape_controls(line)

    def format(self, record: logging.LogRecord) -> str:
        # The traceback Formatter.format appends after formatMessage keeps its own lines.
        return redact(super().format(record))
