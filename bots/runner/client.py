"""Relay a chat to a bot's runner: what the web API uses to answer POST /api/bots/<id>/messages."""

from __future__ import annotations

from typing import Any

import httpx

from ops.logs import REQUEST_ID_HEADER

# Distinct answers the API can pass on: the runner is down vs. the runner is too slow.
UNAVAILABLE = "bot_unavailable"
TIMEOUT = "bot_timeout"
BAD_GATEWAY = "bad_gateway"


def relay_chat(bot: Any, message: str, conversation: str | None, request_id: str, timeout: float) -> tuple[int, dict]:
    """POST the message to http://<bot.address>/chat and return (status, JSON body).

    The runner's own answers (200, 400, 413, 502 ...) come back as they are. Failures to
    reach it become 503 {"error": "bot_unavailable"} (connection refused or reset: the
    process is not there) or 504 {"error": "bot_timeout"} (it took longer than `timeout`).
    """
    if not bot.address:
        return 503, {"error": UNAVAILABLE, "detail": f"bot {bot.slug!r} has no running process"}
    url = f"http://{bot.address}/chat"
    payload: dict[str, Any] = {"message": message}
    if conversation:
        payload["conversation"] = str(conversation)
    try:
        response = httpx.post(
            url,
            json=payload,
            headers={REQUEST_ID_HEADER: request_id},
            timeout=httpx.Timeout(timeout, connect=min(timeout, 2.0)),
        )
    except httpx.TimeoutException:
        return 504, {"error": TIMEOUT, "detail": f"bot {bot.slug!r} did not answer within {timeout:g} s"}
    except httpx.TransportError as exc:
        return 503, {"error": UNAVAILABLE, "detail": f"bot {bot.slug!r} at {bot.address} is not reachable: {exc}"}
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        detail = f"bot {bot.slug!r} answered {response.status_code} without a JSON object"
        return 502, {"error": BAD_GATEWAY, "detail": detail}
    return response.status_code, body
