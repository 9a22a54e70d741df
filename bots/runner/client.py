"""Relay a chat to a bot's runner: what the web uses to answer POST /api/bots/<id>/messages.

Pooled async HTTP clients per event loop (a web worker has one), built once: building
a client costs tens of milliseconds of CPU, a pooled request a fraction of one. The
request carries the runner's secret from the bot's current start.
"""

from __future__ import annotations

import json
import weakref
from asyncio import AbstractEventLoop, get_running_loop
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx

from bots.runner.protocol import GENERATION_HEADER, SECRET_HEADER, SSE_CONTENT_TYPE, sse_event
from deia.logs import REQUEST_ID_HEADER

# The API's answers when the runner is not there (502) or too slow (504).
TIMEOUT = "timeout"
BAD_GATEWAY = "bad_gateway"
# The runner answers (or times out itself) within BOT_CHAT_TIMEOUT; the relay waits a little
# longer so that the runner's own 504, with the stored error, is what the client sees.
RELAY_MARGIN = 5.0

# Pools per event loop, a runner's address always in the same one: whenever a request
# starts or ends, httpcore checks every connection of its pool (two system calls for each
# idle one), so one pool for every runner costs a chat O(all connections).
POOLS = 16
_clients: weakref.WeakKeyDictionary[AbstractEventLoop, dict[int, httpx.AsyncClient]] = weakref.WeakKeyDictionary()


def shared_client(address: str = "") -> httpx.AsyncClient:
    pools = _clients.setdefault(get_running_loop(), {})
    shard = hash(address) % POOLS
    client = pools.get(shard)
    if client is None:
        # No connection limit: backpressure is the runners' (429) and the per-user cap's.
        limits = httpx.Limits(max_connections=None, max_keepalive_connections=64, keepalive_expiry=20)
        client = pools[shard] = httpx.AsyncClient(limits=limits, trust_env=False)
    return client


@dataclass(frozen=True)
class Target:
    """Where the bot's current runner answers, and the secret of its current start."""

    slug: str
    address: str
    secret: str
    generation: int = 0


@dataclass
class Answer:
    """A runner's answer: JSON (`body`) or a stream of server-sent events (`events`)."""

    status: int
    body: dict[str, Any] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)
    events: AsyncIterator[bytes] | None = None


async def relay_chat(
    target: Target, payload: dict[str, Any], request_id: str, timeout: float, margin: float = RELAY_MARGIN
) -> Answer:
    """POST the chat to the runner; its own answers (200, 400, 429, 502, 504 ...) come back as they are.

    Failures to reach it become 502 bad_gateway (connection refused or reset: the
    process is not there) or 504 timeout (no answer within timeout + margin).
    A streamed answer comes back open: iterate `events` to the end (it closes itself).
    """
    if not target.address:
        return Answer(502, {"error": BAD_GATEWAY, "detail": f"bot {target.slug!r} has no running process"})
    client = shared_client(target.address)
    request = client.build_request(
        "POST",
        f"http://{target.address}/chat",
        json=payload,
        headers={
            REQUEST_ID_HEADER: request_id,
            SECRET_HEADER: target.secret,
            GENERATION_HEADER: str(target.generation),
        },
        timeout=httpx.Timeout(timeout + margin, connect=min(timeout, 2.0)),
    )
    try:
        response = await client.send(request, stream=True)
    except httpx.TimeoutException:
        return _timed_out(target, timeout)
    except httpx.TransportError as exc:
        detail = f"bot {target.slug!r} at {target.address} is not reachable: {exc}"
        return Answer(502, {"error": BAD_GATEWAY, "detail": detail})
    if response.headers.get("content-type", "").startswith(SSE_CONTENT_TYPE):
        return Answer(response.status_code, events=_events(target, response, timeout))
    try:
        raw = await response.aread()
    except httpx.TimeoutException:
        return _timed_out(target, timeout)
    except httpx.TransportError:
        raw = b""
    finally:
        await response.aclose()
    try:
        body = json.loads(raw)
    except ValueError:
        body = None
    if not isinstance(body, dict):
        detail = f"bot {target.slug!r} answered {response.status_code} without a JSON object"
        return Answer(502, {"error": BAD_GATEWAY, "detail": detail})
    passed = {k: v for k, v in response.headers.items() if k.lower() == "retry-after"}
    return Answer(response.status_code, body, passed)


def _timed_out(target: Target, timeout: float) -> Answer:
    return Answer(504, {"error": TIMEOUT, "detail": f"bot {target.slug!r} did not answer within {timeout:g} s"})


async def _events(target: Target, response: httpx.Response, timeout: float) -> AsyncIterator[bytes]:
    """The runner's events as they come; a broken stream ends with an error event of ours."""
    try:
        async for chunk in response.aiter_raw():
            yield chunk
    except httpx.TimeoutException:
        yield sse_event("error", {"status": 504, **_timed_out(target, timeout).body})
    except httpx.TransportError as exc:
        detail = f"bot {target.slug!r} broke off its answer: {type(exc).__name__}"
        yield sse_event("error", {"status": 502, "error": BAD_GATEWAY, "detail": detail})
    finally:
        # Also when our client went away: closing the connection tells the runner to stop.
        await response.aclose()
