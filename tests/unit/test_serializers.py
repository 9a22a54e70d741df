"""The bot serializer's written-out rendering equals DRF's generic one, field for field."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework import serializers

from bots.models import Bot, Status
from bots.serializers import BotSerializer

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("running", [True, False])
def test_the_fast_bot_rendering_matches_the_generic_one(running):
    bot = Bot.objects.create(name="Support", slug="support", last_error="boom")
    if running:
        now = timezone.now()
        Bot.objects.filter(pk=bot.pk).update(
            status=Status.RUNNING,
            pid=4242,
            port=18001,
            host="h1",
            advertise_host="10.0.0.5",
            started_at=now - timedelta(seconds=90, microseconds=1234),
            last_heartbeat=now,
            startup_seconds=0.42,
            restart_count=2,
            next_start_at=now + timedelta(seconds=4),
        )
    bot.refresh_from_db()
    fast = BotSerializer(bot).data
    generic = serializers.ModelSerializer.to_representation(BotSerializer(), bot)
    fast.pop("uptime_seconds"), generic.pop("uptime_seconds")  # time moved on between the two
    assert fast == dict(generic)
    assert list(fast) == list(generic)
