"""JSON shapes of the API: bots (read-only; changed through actions) and chat messages."""

from __future__ import annotations

from datetime import datetime

from django.core.validators import RegexValidator
from django.utils import timezone
from rest_framework import serializers

from bots.models import Bot, ChatMessage
from bots.runner.protocol import MAX_MESSAGE_BYTES


class BotSerializer(serializers.ModelSerializer):
    address = serializers.CharField(read_only=True, help_text="host:port the bot answers on (empty when stopped)")
    uptime_seconds = serializers.SerializerMethodField()
    team = serializers.SlugRelatedField(
        slug_field="name", read_only=True, allow_null=True, help_text="The team (group) the bot belongs to, or null"
    )

    class Meta:
        model = Bot
        fields = (
            "id",
            "name",
            "slug",
            "backend",
            "model_name",
            "team",
            "required_label",
            "desired_state",
            "status",
            "pid",
            "host",
            "port",
            "address",
            "started_at",
            "uptime_seconds",
            "last_heartbeat",
            "startup_seconds",
            "restart_count",
            "start_failures",
            "next_start_at",
            "last_error",
            "created_at",
            "updated_at",
        )
        read_only_fields = fields

    def get_uptime_seconds(self, bot: Bot) -> float | None:
        uptime = bot.uptime
        return None if uptime is None else round(uptime.total_seconds(), 3)

    def to_representation(self, bot: Bot) -> dict:
        # The same output as ModelSerializer's field-by-field rendering (a test holds them
        # equal), written out: that generic path was two thirds of GET /api/bots' time.
        return {
            "id": bot.pk,
            "name": bot.name,
            "slug": bot.slug,
            "backend": bot.backend,
            "model_name": bot.model_name,
            "team": bot.team.name if bot.team_id else None,
            "required_label": bot.required_label,
            "desired_state": bot.desired_state,
            "status": bot.status,
            "pid": bot.pid,
            "host": bot.host,
            "port": bot.port,
            "address": bot.address,
            "started_at": _iso(bot.started_at),
            "uptime_seconds": self.get_uptime_seconds(bot),
            "last_heartbeat": _iso(bot.last_heartbeat),
            "startup_seconds": bot.startup_seconds,
            "restart_count": bot.restart_count,
            "start_failures": bot.start_failures,
            "next_start_at": _iso(bot.next_start_at),
            "last_error": bot.last_error,
            "created_at": _iso(bot.created_at),
            "updated_at": _iso(bot.updated_at),
        }


def _iso(value: datetime | None) -> str | None:
    """DRF's ISO 8601 rendering of an aware datetime (UTC as Z)."""
    if value is None:
        return None
    text = timezone.localtime(value).isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


class ChatMessageSerializer(serializers.ModelSerializer):
    class Meta:
        model = ChatMessage
        fields = (
            "id",
            "conversation",
            "role",
            "content",
            "created_at",
            "latency_ms",
            "prompt_tokens",
            "completion_tokens",
            "error",
            "interrupted",
            "request_id",
        )
        read_only_fields = fields


class ChatMessagePageSerializer(serializers.Serializer):
    """One page of a bot's messages, as DRF's PageNumberPagination answers it."""

    count = serializers.IntegerField(help_text="Messages of the bot in all pages")
    next = serializers.URLField(allow_null=True, help_text="The next (older) page; null on the last")
    previous = serializers.URLField(allow_null=True, help_text="The previous (newer) page; null on the first")
    results = ChatMessageSerializer(many=True)


class _StringOnly:
    """JSON numbers are not silently turned into text or UUIDs."""

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


class StrictCharField(_StringOnly, serializers.CharField):
    default_error_messages = {"invalid": "Must be a string."}


class StrictUUIDField(_StringOnly, serializers.UUIDField):
    pass


class SendMessageSerializer(serializers.Serializer):
    # min_length and the pattern put the refusal of an empty or blank message in the schema.
    message = StrictCharField(
        trim_whitespace=False,
        allow_blank=False,
        min_length=1,
        max_length=MAX_MESSAGE_BYTES,
        validators=[RegexValidator(r"\S", message="The message is empty.")],
    )
    conversation = StrictUUIDField(required=False, help_text="Continue this conversation; new one if absent")
    stream = serializers.BooleanField(
        required=False,
        default=False,
        help_text="Answer as server-sent events: a 'chunk' event per piece, then 'done' (or 'error')",
    )

    def validate_message(self, value: str) -> str:
        if len(value.encode()) > MAX_MESSAGE_BYTES:
            raise serializers.ValidationError(f"The message is longer than {MAX_MESSAGE_BYTES} bytes.")
        return value


class ChatReplySerializer(serializers.Serializer):
    """A chat's answer (and, streamed, the data of its final 'done' event)."""

    reply = serializers.CharField()
    conversation = serializers.UUIDField()
    latency_ms = serializers.IntegerField()
    prompt_tokens = serializers.IntegerField()
    completion_tokens = serializers.IntegerField()
    message_id = serializers.IntegerField(help_text="The stored user message")
    reply_id = serializers.IntegerField(help_text="The stored answer")
    request_id = serializers.CharField()


class ErrorSerializer(serializers.Serializer):
    """Every error of the API: a short code and a message or the field errors."""

    error = serializers.CharField()
    detail = serializers.JSONField()
