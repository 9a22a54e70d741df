"""The JSON API: list and inspect bots, start/stop/restart them, chat with them.

Token authentication for clients (operators create tokens in the admin), session
authentication for the admin's own pages. Every error is {"error": code, "detail": ...}.
"""

from __future__ import annotations

import logging

from django.conf import settings
from django.http import Http404
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import exceptions, status, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.settings import api_settings
from rest_framework.views import exception_handler as drf_exception_handler

from bots import lifecycle
from bots.models import Bot, ChatMessage, Status
from bots.runner.client import BAD_GATEWAY, UNAVAILABLE, relay_chat
from bots.serializers import (
    BotSerializer,
    ChatMessagePageSerializer,
    ChatMessageSerializer,
    ErrorSerializer,
    SendMessageSerializer,
)
from ops.audit import client_ip
from ops.logs import new_request_id

log = logging.getLogger("deia.api")


class Conflict(exceptions.APIException):
    status_code = status.HTTP_409_CONFLICT
    default_code = "conflict"
    default_detail = "The request conflicts with the bot's state."


class BadGateway(exceptions.APIException):
    status_code = status.HTTP_502_BAD_GATEWAY
    default_code = "bad_gateway"
    default_detail = "The bot did not answer properly."


class GatewayTimeout(exceptions.APIException):
    status_code = status.HTTP_504_GATEWAY_TIMEOUT
    default_code = "timeout"
    default_detail = "The bot did not answer in time."


def exception_handler(exc, context):
    """DRF's handler, reshaped so that every error is {"error": code, "detail": ...}."""
    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    if isinstance(exc, exceptions.ValidationError):
        code, detail = "invalid", exc.detail
    elif isinstance(exc, Http404):
        code, detail = "not_found", "Not found."
    elif isinstance(exc, exceptions.APIException):
        codes = exc.get_codes()
        code, detail = (codes if isinstance(codes, str) else exc.default_code), str(exc.detail)
    else:
        code, detail = "error", response.data
    response.data = {"error": code, "detail": detail}
    return response


ERRORS = {
    400: OpenApiResponse(ErrorSerializer, description="Invalid input; detail holds the field errors"),
    401: OpenApiResponse(ErrorSerializer, description="Missing or invalid credentials"),
    403: OpenApiResponse(ErrorSerializer, description="Not allowed"),
    404: OpenApiResponse(ErrorSerializer, description="No such bot"),
}
# What every operation on one bot may answer besides its own outcomes.
ON_A_BOT = {401: ERRORS[401], 403: ERRORS[403], 404: ERRORS[404]}


@extend_schema(responses={200: BotSerializer, **ON_A_BOT})
class BotViewSet(viewsets.ReadOnlyModelViewSet):
    """Bots with their desired state and observed status."""

    serializer_class = BotSerializer
    # The system prompt is not part of the API's bot (it can be long): not read at all.
    queryset = Bot.objects.order_by("name").defer("system_prompt")
    # The fleet is bounded (bots are configuration), so the list is one page.
    pagination_class = None

    def get_exception_handler(self):
        return exception_handler

    def _who(self) -> dict:
        return {"user": self.request.user, "ip": client_ip(self.request)}

    def _changed(self, bot: Bot) -> Response:
        return Response(BotSerializer(bot).data, status=status.HTTP_202_ACCEPTED)

    @extend_schema(
        request=None,
        responses={
            202: BotSerializer,
            409: OpenApiResponse(ErrorSerializer, description="Refused by MAX_BOTS"),
            **ON_A_BOT,
        },
    )
    @action(detail=True, methods=["post"])
    def start(self, request: Request, pk: str | None = None) -> Response:
        """Ask for the bot to run; a worker starts it. 409 when MAX_BOTS or a freeze refuses."""
        try:
            bot = lifecycle.request_start(self.get_object(), **self._who())
        except lifecycle.StartRefused as exc:
            raise Conflict(str(exc), code="start_refused") from exc
        return self._changed(bot)

    @extend_schema(request=None, responses={202: BotSerializer, **ON_A_BOT})
    @action(detail=True, methods=["post"])
    def stop(self, request: Request, pk: str | None = None) -> Response:
        """Ask for the bot to stop; its host's worker stops the process."""
        return self._changed(lifecycle.request_stop(self.get_object(), **self._who()))

    @extend_schema(
        request=None,
        responses={
            202: BotSerializer,
            409: OpenApiResponse(ErrorSerializer, description="Refused by a freeze"),
            **ON_A_BOT,
        },
    )
    @action(detail=True, methods=["post"])
    def restart(self, request: Request, pk: str | None = None) -> Response:
        """Restart the bot's process (or start it if it is not running)."""
        try:
            bot = lifecycle.request_restart(self.get_object(), **self._who())
        except lifecycle.StartRefused as exc:
            raise Conflict(str(exc), code="start_refused") from exc
        return self._changed(bot)

    @extend_schema(
        methods=["GET"],
        request=None,
        parameters=[OpenApiParameter("page", int, description="Page number, from 1 (50 messages a page)")],
        responses={
            200: ChatMessagePageSerializer,
            **ON_A_BOT,
            404: OpenApiResponse(ErrorSerializer, description="No such bot, or no such page"),
        },
    )
    @extend_schema(
        methods=["POST"],
        request=SendMessageSerializer,
        responses={
            200: OpenApiResponse(description="The bot's answer, as the runner returns it"),
            400: ERRORS[400],
            **ON_A_BOT,
            409: OpenApiResponse(ErrorSerializer, description="The bot is not running"),
            502: OpenApiResponse(ErrorSerializer, description="The bot failed or is unreachable"),
            504: OpenApiResponse(ErrorSerializer, description="The bot did not answer within BOT_CHAT_TIMEOUT"),
        },
    )
    @action(detail=True, methods=["get", "post"], serializer_class=ChatMessageSerializer)
    def messages(self, request: Request, pk: str | None = None) -> Response:
        """GET: the bot's messages, newest first, paginated. POST: send a message to the bot."""
        bot = self.get_object()
        if request.method == "POST":
            return self._send(bot, request)
        # Served by the (bot, -created_at) index.
        messages = ChatMessage.objects.filter(bot_id=bot.pk).order_by("-created_at", "-id")
        paginator = api_settings.DEFAULT_PAGINATION_CLASS()
        page = paginator.paginate_queryset(messages, request, view=self)
        return paginator.get_paginated_response(ChatMessageSerializer(page, many=True).data)

    def _send(self, bot: Bot, request: Request) -> Response:
        payload = SendMessageSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        if bot.status != Status.RUNNING or not bot.port:
            raise Conflict(f"Bot {bot.slug} is not running (status {bot.status}).", code="not_running")
        body = {"message": payload.validated_data["message"]}
        if "conversation" in payload.validated_data:
            body["conversation"] = str(payload.validated_data["conversation"])
        code, answer = relay(bot, body, getattr(request._request, "request_id", None))
        return Response(answer, status=code)


def relay(bot: Bot, body: dict, request_id: str | None) -> tuple[int, dict]:
    """Relay to the runner's /chat; unreachable -> 502, too slow -> 504 (BOT_CHAT_TIMEOUT)."""
    code, answer = relay_chat(
        bot, body["message"], body.get("conversation"), request_id or new_request_id(), settings.BOT_CHAT_TIMEOUT
    )
    if code == status.HTTP_504_GATEWAY_TIMEOUT:
        raise GatewayTimeout(answer.get("detail") or GatewayTimeout.default_detail)
    if code >= 500 and answer.get("error") in (None, UNAVAILABLE, BAD_GATEWAY):
        # Unreachable, or an answer that is not the runner's own JSON error.
        log.warning("bot answered badly", extra={"bot": bot.slug, "status": code, "error": answer.get("error")})
        raise BadGateway(answer.get("detail") or BadGateway.default_detail)
    # The runner's own answers (200, 400, 413, its 502 llm_error ...) pass through as they are.
    return code, answer
