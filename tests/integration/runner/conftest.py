from __future__ import annotations

import itertools

import pytest

from bots.models import Backend, Bot

_names = itertools.count(1)


@pytest.fixture
def make_bot(transactional_db):
    """make_bot(**fields) -> a saved Bot (Ollama backend, the fake's default model)."""

    def make(**fields) -> Bot:
        n = next(_names)
        values = {
            "name": f"Runner bot {n}",
            "slug": f"runner-bot-{n}",
            "backend": Backend.OLLAMA,
            "model_name": "llama3.2",
            "system_prompt": "You are terse.",
        }
        values.update(fields)
        return Bot.objects.create(**values)

    return make
