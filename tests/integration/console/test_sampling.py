"""The minute sampler against a real web and a real bot runner: health, messages, first
token, bots by status and the database's size, stored once per minute whatever the runs."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.test import override_settings
from django.utils import timezone

from bots.models import Backend, Bot, ChatMessage, Role, Status
from ops.console import samples, sampling
from ops.console.figures import Figure, StoredSource
from ops.console.models import Sample
from ops.console.tasks import sample_figures
from ops.schedules import SCHEDULES
from tests.plugins.observability import WebApi
from tests.support.procs import free_port

pytestmark = pytest.mark.django_db(transaction=True)


def totals() -> dict[str, float]:
    found: dict[str, float] = {}
    for name, value in Sample.objects.values_list("name", "value"):
        found[name] = found.get(name, 0.0) + value
    return found


@pytest.fixture
def chatted_bot(gunicorn, runner, settings):
    """An echo bot's runner recorded as running, two chats answered through a real web."""
    web = gunicorn(workers=1)
    settings.DIAGNOSE_WEB_URL = web
    bot = Bot.objects.create(name="Sampled", slug="sampled", backend=Backend.ECHO, model_name="echo")
    url = runner(bot)
    Bot.objects.filter(pk=bot.pk).update(
        status=Status.RUNNING, port=url.port, host="127.0.0.1", pid=url.proc.pid, chat_secret=url.auth["X-Bot-Secret"]
    )
    Bot.objects.create(name="Idle", slug="idle", backend=Backend.ECHO, model_name="echo")
    api = WebApi(web)
    api.chat(bot, "first")
    api.chat(bot, "second")
    return bot


def test_the_sampler_stores_the_minute_and_a_second_run_changes_nothing(chatted_bot):
    later = timezone.now() + timedelta(minutes=1)  # the chats' minute is complete by then
    samples_taken = sampling.sample(later)
    assert samples_taken["health_ok"] == 1
    first = totals()
    assert first[samples.MESSAGES] == 2
    assert first[samples.MESSAGE_LATENCY] == 2
    assert first[samples.FIRST_TOKEN] == 2
    assert first[samples.HEALTH_MINUTES] == first[samples.HEALTH_OK] == 1
    assert first[samples.BOTS] == 2
    assert first[samples.DATABASE_BYTES] > 1_000_000

    sampling.sample(later)
    again = totals()
    # The same minute replaced, not added to (the database's size itself may have moved).
    assert again.pop(samples.DATABASE_BYTES) > 1_000_000
    first.pop(samples.DATABASE_BYTES)
    assert again == first

    src = StoredSource()
    window = (later - timedelta(minutes=15), later + timedelta(minutes=1))
    assert src.scalar(Figure.MESSAGE_RATE, *window) > 0
    slowest = max(ChatMessage.objects.filter(role=Role.ASSISTANT).values_list("latency_ms", flat=True)) / 1000
    bound = min(b for b in sampling.MESSAGE_BUCKETS if b >= slowest)
    assert 0 < src.scalar(Figure.MESSAGE_P95, *window) <= bound
    assert src.scalar(Figure.FIRST_TOKEN_P95, *window) is not None
    assert src.scalar(Figure.AVAILABILITY, *window) == 1.0
    assert src.series(Figure.BOTS_BY_STATUS, *window, timedelta(minutes=1))["running"][-1][1] == 1


def test_a_minute_whose_health_check_fails_lowers_the_availability(settings):
    settings.DIAGNOSE_WEB_URL = f"http://127.0.0.1:{free_port()}"  # nothing answers there
    now = timezone.now()
    sample_figures.apply()
    assert totals()[samples.HEALTH_OK] == 0
    samples.upsert([(samples.minute_of(now) - timedelta(minutes=1), 60, samples.HEALTH_OK, "", 1)], add=False)
    samples.upsert([(samples.minute_of(now) - timedelta(minutes=1), 60, samples.HEALTH_MINUTES, "", 1)], add=False)
    assert StoredSource().scalar(Figure.AVAILABILITY, now - timedelta(minutes=5), now + timedelta(minutes=1)) == 0.5


def test_the_sampler_is_scheduled_every_minute_on_the_quick_queue():
    [schedule] = [s for s in SCHEDULES if s.task == sample_figures.name]
    assert (schedule.every_seconds, schedule.queue) == (60, "bots")


def test_without_the_cache_the_minute_is_sampled_but_first_token(chatted_bot):
    down = {
        "BACKEND": "django_redis.cache.RedisCache",
        "LOCATION": f"redis://127.0.0.1:{free_port()}/0",
        "OPTIONS": {"SOCKET_CONNECT_TIMEOUT": 0.5, "SOCKET_TIMEOUT": 0.5},
    }
    with override_settings(CACHES={"default": down}):
        sampling.sample(timezone.now() + timedelta(minutes=1))
    found = totals()
    assert found[samples.MESSAGES] == 2 and found[samples.HEALTH_OK] == 1
    assert samples.FIRST_TOKEN not in found
