"""Which requests are chats: the one rule the web's two doors (deia.asgi) and its workers'
hand-over of chat connections (deia.adapters.gunicorn) share. No Django: gunicorn's
master imports it."""

from __future__ import annotations

import re

CHAT_PATH = re.compile(r"^/api/bots/[0-9]+/messages$")


def is_chat_request(head: bytes) -> bool:
    """Whether the HTTP/1.x request that starts with `head` is for the chat path. A request line
    not read whole yet, or not of the origin form (`POST /path?query HTTP/1.1`), is not."""
    line, found, _ = head.partition(b"\r\n")
    if not found:
        return False
    words = line.split(b" ")
    if len(words) != 3 or not words[2].startswith(b"HTTP/1."):
        return False
    path = words[1].partition(b"?")[0]
    return CHAT_PATH.match(path.decode("latin-1")) is not None
