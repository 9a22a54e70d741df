"""A user's chats in flight, counted in the shared Redis (CHAT_MAX_CONCURRENT_PER_USER)."""

from __future__ import annotations

import pytest
from django.core.cache import cache
from prometheus_client import REGISTRY

from bots.chat_api import RELAY_MARGIN, UserLimit, UserSlot
from bots.metrics import REJECT_USER_LIMIT


def rejections(bot: str) -> float:
    labels = {"bot": bot, "reason": REJECT_USER_LIMIT}
    return REGISTRY.get_sample_value("deia_chat_rejected_total", labels) or 0.0


def redis_key(client, user_id: int) -> str:
    [key] = client.keys(f"*chat-inflight:{user_id}")
    return key


def test_a_slot_is_counted_in_redis_with_an_expiry_and_given_back(redis_client, settings):
    settings.CHAT_MAX_CONCURRENT_PER_USER = 2
    first = UserSlot.take(7, "some-bot")
    UserSlot.take(7, "some-bot")

    key = redis_key(redis_client, 7)
    assert int(redis_client.get(key)) == 2
    # A worker killed mid-chat never gives its slot back: the count must expire on its own.
    assert 0 < redis_client.ttl(key) <= settings.BOT_CHAT_TIMEOUT + RELAY_MARGIN + 60
    assert cache.get("chat-inflight:7") == 2  # the cache's own key: what give_back() counts down

    first.give_back()
    assert int(redis_client.get(key)) == 1


def test_the_slot_past_the_cap_is_refused_and_leaves_the_count_as_it_was(redis_client, settings):
    settings.CHAT_MAX_CONCURRENT_PER_USER = 1
    UserSlot.take(8, "busy-bot")
    before = rejections("busy-bot")

    with pytest.raises(UserLimit) as refused:
        UserSlot.take(8, "busy-bot")

    assert refused.value.get_codes() == "user_limit" and refused.value.wait == 1
    assert int(redis_client.get(redis_key(redis_client, 8))) == 1
    assert rejections("busy-bot") == before + 1
    assert UserSlot.take(9, "busy-bot").key == "chat-inflight:9"  # another user is not counted with this one
