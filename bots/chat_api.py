"""GET and POST /api/bots/<id>/messages: a bot's history, and chatting with it.

The chat waits on the bot asynchronously (adrf: DRF's authentication, permissions,
throttles and errors on an async view), so a thousand chats in flight hold no worker and
no thread: the admin, the API, /health and /metrics never queue behind them. The
synchronous steps (who is asking, which bot, the per-user cap) run in one short hop to a
thread and hand their database connection back before the wait begins.

Backpressure, not queues: the runner refuses its (BOT_MAX_CONCURRENT_CHATS + 1)th chat
with 429 bot_busy, and a user with CHAT_MAX_CONCURRENT_PER_USER chats in flight gets 429
user_limit, both at once and with Retry-After.
"""

from __future__ import annotations

import asyncio
import weakref
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings
from django.core.cache import cache
from django.db import connection
from django.http import StreamingHttpResponse
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import exceptions, status
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.settings import api_settings

from bots import access
from bots.api import ERRORS, ON_A_BOT, Conflict, exception_handler, get_visible_bot
from bots.metrics import CHAT_REJECTED, REJECT_USER_LIMIT
from bots.models import Bot, ChatMessage, Status
from bots.runner.client import RELAY_MARGIN, Target, relay_chat
from bots.runner.protocol import SSE_CONTENT_TYPE
from bots.serializers import (
    ChatMessagePageSerializer,
    ChatMessageSerializer,
    ChatReplySerializer,
    ErrorSerializer,
    SendMessageSerializer,
)
from deia.adapters.adrf import ChecksInHandlerAPIView
from deia.adapters.django import has_thread_per_request
from deia.logs import new_request_id
from deia.throttling import count_up

RETRY_AFTER_USER_LIMIT = "1"
_admissions: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Admission] = weakref.WeakKeyDictionary()


@dataclass
class Admission:
    """Chats in their synchronous step at once, per worker (event loop): what the database
    pool has beyond the WEB_SYNC_THREADS the admin, the API and /health may use; and the
    threads they run in, as many, kept (a thread per request would cost two thread starts)."""

    slots: asyncio.Semaphore
    threads: ThreadPoolExecutor


def admission() -> Admission:
    loop = asyncio.get_running_loop()
    if loop not in _admissions:
        size = max(1, (settings.DB_POOL_MAX or 10) - settings.WEB_SYNC_THREADS)
        _admissions[loop] = Admission(asyncio.Semaphore(size), ThreadPoolExecutor(size, "chat-admission"))
    return _admissions[loop]


class UserLimit(exceptions.Throttled):
    default_code = "user_limit"


@dataclass
class UserSlot:
    """One of a user's CHAT_MAX_CONCURRENT_PER_USER chats, counted in the shared cache.

    The count lives in Redis in production (all web workers see it); its key expires a
    while after the longest possible chat, so a worker killed mid-chat cannot leak a slot
    for ever. With the embedded local-memory cache each web worker counts on its own.
    """

    key: str

    @classmethod
    def take(cls, user_id: int, bot_slug: str) -> UserSlot:
        key = f"chat-inflight:{user_id}"
        # Counted in Redis with an expiry: a slot leaked by a killed worker expires.
        count = count_up(key, int(settings.BOT_CHAT_TIMEOUT + RELAY_MARGIN + 60))
        if count > settings.CHAT_MAX_CONCURRENT_PER_USER:
            cls(key).give_back()
            CHAT_REJECTED.labels(bot=bot_slug, reason=REJECT_USER_LIMIT).inc()
            limit = settings.CHAT_MAX_CONCURRENT_PER_USER
            raise UserLimit(
                detail=f"you have {limit} chats in flight (CHAT_MAX_CONCURRENT_PER_USER); retry when one ends",
                wait=int(RETRY_AFTER_USER_LIMIT),
            )
        return cls(key)

    def give_back(self) -> None:
        try:
            cache.decr(self.key)
        except ValueError:
            pass  # expired meanwhile: nothing left to give back


@dataclass
class Chat:
    target: Target
    payload: dict[str, Any]
    stream: bool
    slot: UserSlot


class JSONWhateverAccepted(DefaultContentNegotiation):
    """Answers that are not a stream are JSON, also for a client that accepts only events."""

    def select_renderer(self, request, renderers, format_suffix=None):
        return renderers[0], renderers[0].media_type


@extend_schema(tags=["bots"])
class BotMessagesView(ChecksInHandlerAPIView):
    """A bot's messages, newest first (GET), and sending it one (POST)."""

    action = "messages"  # bots.chat_bot, granted by action as on BotViewSet
    permission_classes = [access.BotActionPermission]
    serializer_class = ChatMessageSerializer
    content_negotiation_class = JSONWhateverAccepted

    def get_exception_handler(self):
        return exception_handler

    async def _admitted(self, step, request: Request, pk: int):
        """DRF's checks (authentication, permissions, throttles) and `step`, in one hop to a
        thread, at most ADMISSION at once in this worker: a burst of chats waits here, on
        the event loop, and leaves database connections for the rest of the control plane."""
        admitting = admission()
        async with admitting.slots:

            def checked():
                try:
                    self.run_checks(request, pk=pk)
                    return step(request, pk)
                finally:
                    # The thread is kept for the next chat: its connection goes back to the
                    # pool also when the checks refused (as _prepare's does for a chat).
                    if not connection.in_atomic_block:
                        connection.close()

            if has_thread_per_request():  # Django's own handlers and test clients
                return await sync_to_async(checked)()
            return await sync_to_async(checked, thread_sensitive=False, executor=admitting.threads)()

    # --- history -----------------------------------------------------------------------
    @extend_schema(
        operation_id="bots_messages_list",
        parameters=[OpenApiParameter("page", int, description="Page number, from 1 (50 messages a page)")],
        responses={
            200: ChatMessagePageSerializer,
            **ON_A_BOT,
            404: OpenApiResponse(ErrorSerializer, description="No such bot (or one of another team), or no such page"),
        },
    )
    async def get(self, request: Request, pk: int) -> Response:
        return await self._admitted(self._history, request, pk)

    def _history(self, request: Request, pk: int) -> Response:
        bot = get_visible_bot(self, request, pk)
        # Served by the (bot, -created_at) index.
        messages = ChatMessage.objects.filter(bot_id=bot.pk).order_by("-created_at", "-id")
        paginator = api_settings.DEFAULT_PAGINATION_CLASS()
        page = paginator.paginate_queryset(messages, request, view=self)
        return paginator.get_paginated_response(ChatMessageSerializer(page, many=True).data)

    # --- chat --------------------------------------------------------------------------
    @extend_schema(
        operation_id="bots_messages_create",
        request=SendMessageSerializer,
        responses={
            200: OpenApiResponse(
                ChatReplySerializer,
                description="The bot's answer; with stream=true (or Accept: text/event-stream) server-sent "
                "events instead: 'chunk' {content} per piece, then 'done' (these fields) or 'error'",
            ),
            400: ERRORS[400],
            **ON_A_BOT,
            409: OpenApiResponse(ErrorSerializer, description="The bot is not running"),
            429: OpenApiResponse(ErrorSerializer, description="bot_busy or user_limit, with Retry-After"),
            502: OpenApiResponse(ErrorSerializer, description="The bot or its LLM failed"),
            503: OpenApiResponse(ErrorSerializer, description="The bot is unreachable"),
            504: OpenApiResponse(ErrorSerializer, description="No answer within BOT_CHAT_TIMEOUT"),
        },
    )
    async def post(self, request: Request, pk: int):
        chat: Chat = await self._admitted(self._prepare, request, pk)
        streamed = False
        try:
            request_id = getattr(request, "request_id", None) or new_request_id()
            answer = await relay_chat(chat.target, chat.payload, request_id, settings.BOT_CHAT_TIMEOUT)
            if answer.events is None:
                return Response(answer.body, status=answer.status, headers=answer.headers)
            streamed = True
            return _stream(answer.events, chat.slot)
        finally:
            if not streamed:
                await sync_to_async(chat.slot.give_back, thread_sensitive=False)()

    def _prepare(self, request: Request, pk: int) -> Chat:
        """Who, which bot, may they, is it running, a slot: then the connection goes back."""
        try:
            payload = SendMessageSerializer(data=request.data)
            payload.is_valid(raise_exception=True)
            bot: Bot = get_visible_bot(self, request, pk)
            if bot.status != Status.RUNNING or not bot.port:
                raise Conflict(f"Bot {bot.slug} is not running (status {bot.status}).", code="not_running")
            data = payload.validated_data
            stream = data["stream"] or SSE_CONTENT_TYPE in request.headers.get("Accept", "")
            body: dict[str, Any] = {"message": data["message"], "stream": stream}
            if "conversation" in data:
                body["conversation"] = str(data["conversation"])
            slot = UserSlot.take(request.user.pk, bot.slug)
            # The current generation's runner only: its address, its secret, its generation.
            return Chat(Target(bot.slug, bot.address, bot.chat_secret, bot.generation), body, stream, slot)
        finally:
            # A chat in flight must not hold a pooled connection. (Inside a transaction,
            # as in a test's, the connection is not ours to close.)
            if not connection.in_atomic_block:
                connection.close()


def _stream(events, slot: UserSlot) -> StreamingHttpResponse:
    async def passing_on():
        try:
            async for chunk in events:
                yield chunk
        finally:
            await events.aclose()
            await sync_to_async(slot.give_back, thread_sensitive=False)()

    response = StreamingHttpResponse(passing_on(), content_type=SSE_CONTENT_TYPE, status=status.HTTP_200_OK)
    response["Cache-Control"] = "no-cache"
    response["X-Accel-Buffering"] = "no"  # nginx passes each event on at once
    return response
