"""A bot runner's /metrics: the contract's runner families, at zero from the start, bot-labelled only."""

from __future__ import annotations

import httpx
import pytest

from bots.models import Backend, Bot
from tests.plugins.observability import RUNNER_CONTRACT, parse_samples, value

pytestmark = pytest.mark.django_db(transaction=True)

# Every label a runner may export: bot and token kind, plus the client library's and
# django-prometheus' own (buckets, gc generation, python version, database alias).
BOUNDED_LABELS = {
    "bot",
    "kind",
    "reason",
    "le",
    "generation",
    "implementation",
    "major",
    "minor",
    "patchlevel",
    "version",
} | {
    "reason",
    "alias",
    "vendor",
    "type",
    "state",
}


def runner_samples(url: str):
    response = httpx.get(f"{url}/metrics", timeout=10)
    assert response.status_code == 200
    return response.text, parse_samples(response.text)


def test_a_runner_exports_every_runner_metric_of_the_contract_at_zero_before_its_first_message(runner):
    bot = Bot.objects.create(name="Echo", slug="echo-one", backend=Backend.ECHO, model_name="echo")
    url = runner(bot)
    text, samples = runner_samples(url)
    names = {name for name, _ in samples}
    missing = [name for name in RUNNER_CONTRACT if name not in names]
    assert not missing, missing
    assert not [name for name in names if name.endswith(("_total_total", "_created"))]
    assert samples[("deia_bot_messages_total", frozenset({("bot", "echo-one")}))] == 0
    assert samples[("deia_bot_message_errors_total", frozenset({("bot", "echo-one")}))] == 0
    assert samples[("deia_bot_message_processing_seconds_count", frozenset({("bot", "echo-one")}))] == 0
    assert samples[("deia_llm_tokens_total", frozenset({("bot", "echo-one"), ("kind", "completion")}))] == 0
    # Web-only families stay on the web: a runner does not report the fleet or the checks.
    assert "deia_health_check_up" not in text
    assert "deia_bots{" not in text


def test_a_chat_moves_the_runner_counters_and_labels_stay_bounded(runner):
    bot = Bot.objects.create(name="Echo", slug="echo-two", backend=Backend.ECHO, model_name="echo")
    url = runner(bot)
    for text in ("first question", "second question"):
        response = httpx.post(f"{url}/chat", headers=url.auth, json={"message": text}, timeout=10)
        assert response.status_code == 200, response.text
    text, samples = runner_samples(url)
    assert value(samples, "deia_bot_messages_total", bot="echo-two") == 2
    assert value(samples, "deia_bot_message_processing_seconds_count", bot="echo-two") == 2
    assert value(samples, "deia_bot_message_processing_seconds_bucket", bot="echo-two", le="0.5") == 2
    assert value(samples, "deia_llm_tokens_total", bot="echo-two", kind="completion") > 0
    # Only bounded labels: no message, conversation or request id ever becomes a label.
    labels = {name for _, pairs in samples for name, _ in pairs}
    assert labels <= BOUNDED_LABELS, labels - BOUNDED_LABELS
    assert "question" not in text
