"""The minute sampler's Celery task (scheduled in ops.schedules; registered by ops.tasks)."""

from __future__ import annotations

import logging

from celery import shared_task

from ops.console import sampling

log = logging.getLogger(__name__)
TASK = "ops.console.sample_figures"


@shared_task(name=TASK, soft_time_limit=50, time_limit=55)
def sample_figures() -> dict[str, int]:
    """Take this minute's samples for the System Overview (ops.console.sampling.sample)."""
    result = sampling.sample()
    log.info("figures sampled: %s", result)
    return result
