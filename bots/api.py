"""The JSON API: list and inspect bots, start/stop/restart them (chat: bots.chat_api).

Token authentication for clients (operators create tokens in the admin), session
authentication for the admin's own pages. Every error is {"error": code, "detail": ...}.
"""

from __future__ import annotations

from django.http import Http404
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import exceptions, status, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from bots import access, lifecycle
from bots.models import Bot
from bots.serializers import BotSerializer, ErrorSerializer
from deia.audit import client_ip


class Conflict(exceptions.APIException):
    status_code = status.HTTP_409_CONFLICT
    default_code = "conflict"
    default_detail = "The request conflicts with the bot's state."


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
    403: OpenApiResponse(ErrorSerializer, description="The user lacks the permission this action needs"),
    404: OpenApiResponse(ErrorSerializer, description="No such bot, or one of another team"),
}
# What every operation on one bot may answer besides its own outcomes.
ON_A_BOT = {401: ERRORS[401], 403: ERRORS[403], 404: ERRORS[404]}


@extend_schema(responses={200: BotSerializer, **ON_A_BOT})
class BotViewSet(viewsets.ReadOnlyModelViewSet):
    """Bots with their desired state and observed status."""

    serializer_class = BotSerializer
    # The system prompt is not part of the API's bot (it can be long): not read at all.
    queryset = Bot.objects.order_by("name").defer("system_prompt").select_related("team")
    # The fleet is bounded (bots are configuration), so the list is one page.
    pagination_class = None
    # A login to read bots, bots.operate_bot to start/stop/restart, bots.chat_bot for messages.
    permission_classes = [access.BotActionPermission]

    def get_queryset(self):
        # Other teams' bots are not there at all: lists leave them out, their URLs are 404s.
        return access.visible_bots(self.request.user, super().get_queryset())

    def permission_denied(self, request, message=None, code=None):
        # A refused start/stop/restart by a logged-in user is on record (once per request).
        if request.user and request.user.is_authenticated and self.action in access.OPERATE_ACTIONS:
            access.audit_denied(self.action, request.user, [self.kwargs.get("pk")], request=request)
        super().permission_denied(request, message, code)

    def get_exception_handler(self):
        return exception_handler

    def _who(self) -> dict:
        return {"user": self.request.user, "ip": client_ip(self.request)}

    def _requested(self, request_fn) -> Response:
        """Ask the lifecycle for a change of this bot; 202 with the bot, 409 when refused."""
        try:
            bot = request_fn(self.get_object(), **self._who())
        except lifecycle.StartRefused as exc:
            raise Conflict(str(exc), code="start_refused") from exc
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
        return self._requested(lifecycle.request_start)

    @extend_schema(request=None, responses={202: BotSerializer, **ON_A_BOT})
    @action(detail=True, methods=["post"])
    def stop(self, request: Request, pk: str | None = None) -> Response:
        """Ask for the bot to stop; its host's worker stops the process."""
        return self._requested(lifecycle.request_stop)

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
        return self._requested(lifecycle.request_restart)


def get_visible_bot(view, request: Request, pk: int) -> Bot:
    """The bot if this user may see it (else 404), its object permissions checked."""
    bot = access.visible_bots(request.user, Bot.objects.defer("system_prompt")).filter(pk=pk).first()
    if bot is None:
        raise exceptions.NotFound()
    view.check_object_permissions(request, bot)
    return bot
