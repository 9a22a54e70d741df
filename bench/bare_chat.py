"""The chat path's floor: POST /api/bots/<id>/messages's work with no framework around it.

A plain ASGI callable, served by the same gunicorn and uvicorn workers as the web
(bench/asgi.py routes /bench/bare-chat/<id> to it), that does what a chat must do and
nothing else: read and parse the JSON body, the same API-token lookup (ApiToken.objects.matching,
the same refusals, the same touch), the same chat permission, the same visibility rule
(bots.access.visible_bots) and running check, the user's chat slot (one count_up in Redis
and the DECR), and the relay to the bot's runner through the same pooled httpx clients
(bots.runner.client.relay_chat), whose answer it passes on. The database step runs in a
kept thread, the real view's own admission (bots.chat_api.admission: as many at once, in
the same threads), and hands its connection back before the relay.
No Django handler, no middleware, no DRF, no URL resolver, no request id or log line, no
streaming. The web's chats/s over this app's is our overhead; this app's own ceiling is
what the machine gives any Python relay built on these libraries.
"""

from __future__ import annotations

import asyncio
import json

from django.conf import settings
from django.db import close_old_connections

from bench.bare import user_of
from bots import access
from bots.chat_api import UserSlot, admission
from bots.models import Bot, Status
from bots.runner.client import Target, relay_chat
from deia.logs import new_request_id

PREFIX = "/bench/bare-chat/"


class Refused(Exception):
    def __init__(self, status: int, error: str) -> None:
        self.status, self.error = status, error


def prepare(authorization: str, pk: int) -> tuple[Target, UserSlot]:
    close_old_connections()
    try:
        user = user_of(authorization)
        if user is None:
            raise Refused(401, "not_authenticated")
        if not access.may(user, access.CHAT):
            raise Refused(403, "permission_denied")
        bot = access.visible_bots(user, Bot.objects.all()).filter(pk=pk).first()
        if bot is None:
            raise Refused(404, "not_found")
        if bot.status != Status.RUNNING or not bot.port:
            raise Refused(409, "not_running")
        slot = UserSlot.take(user.pk, bot.slug)
        return Target(bot.slug, bot.address, bot.chat_secret, bot.generation), slot
    finally:
        close_old_connections()


async def application(scope, receive, send) -> None:
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    headers = dict(scope["headers"])
    try:
        data = json.loads(body)
        if not isinstance(data, dict) or not isinstance(data.get("message"), str) or not data["message"]:
            raise Refused(400, "invalid")
        pk = int(scope["path"].removeprefix(PREFIX))
        authorization = headers.get(b"authorization", b"").decode("latin-1")
        admitting = admission()
        async with admitting.slots:
            target, slot = await asyncio.get_running_loop().run_in_executor(
                admitting.threads, prepare, authorization, pk
            )
    except Refused as refused:
        status, answer = refused.status, {"error": refused.error}
    except ValueError:
        status, answer = 400, {"error": "invalid"}
    else:
        try:
            payload = {"message": data["message"], "stream": False}
            relayed = await relay_chat(target, payload, new_request_id(), settings.BOT_CHAT_TIMEOUT)
            status, answer = relayed.status, relayed.body
        finally:
            await asyncio.get_running_loop().run_in_executor(admission().threads, slot.give_back)
    raw = json.dumps(answer).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(raw)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": raw})
