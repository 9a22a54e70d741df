"""The wire between the web and a runner: the secret's header and the chat's event stream.

/chat requires the header X-Bot-Secret with the secret of the runner's current start.

A streamed chat is `event: chunk` per piece of the answer ({"content": "..."}), then one
`event: done` ({"reply", "conversation", "message_id", "reply_id", tokens, latency_ms}) or
`event: error` ({"status", "error", "detail", ...}): a failure mid-answer ends the stream
with an event, never a torn connection.
"""

from __future__ import annotations

import json
from typing import Any

SECRET_HEADER = "X-Bot-Secret"  # noqa: S105 - a header's name
# The bot's generation the web relays to: a runner of another generation refuses (fencing).
GENERATION_HEADER = "X-Bot-Generation"
SSE_CONTENT_TYPE = "text/event-stream"
# A chat message is text, not a document: the API and the runner refuse a longer one (its
# UTF-8 bytes, 413 from the runner).
MAX_MESSAGE_BYTES = 32 * 1024
# The JSON body that carries one: at worst six bytes per byte of message (a control
# character is \u00XX), plus the envelope. A runner reads no further than this.
MAX_CHAT_BODY_BYTES = 6 * MAX_MESSAGE_BYTES + 1024


def sse_event(event: str, data: dict[str, Any]) -> bytes:
    return f"event: {event}\ndata: {json.dumps(data)}\n\n".encode()
