"""The control loop's own tasks expire; an operator's requests never do."""

from __future__ import annotations

import time

from django_celery_beat.models import PeriodicTask

from bots import lifecycle
from bots.lifecycle import dispatch
from bots.models import Bot, DesiredState, Status
from deia.models import AuditLog
from ops.schedules import install
from tests.support.procs import wait_for


def discarded(output: str, task: str) -> bool:
    return any("Discarding revoked task" in line and f"{task}[" in line for line in output.splitlines())


def test_reconciles_sent_during_a_worker_outage_are_discarded_but_an_operators_start_still_runs(bot_worker, settings):
    settings.BOT_RECONCILE_INTERVAL = 1.0  # the expiry of the loop's tasks, as in the workers' env
    stale = Bot.objects.create(name="Stale", slug="stale", desired_state=DesiredState.RUNNING)
    wanted = Bot.objects.create(name="Wanted", slug="wanted")
    # No worker is up: the loop's tasks and an operator's start wait in Redis.
    sent = time.monotonic()
    assert dispatch.reconcile_soon(stale, queue=dispatch.SHARED_QUEUE, from_loop=True)
    assert dispatch.reconcile_host_soon("host-a")
    lifecycle.request_start(wanted, actor="test")
    wait_for(lambda: time.monotonic() - sent > 1.5, timeout=5, what="the loop's tasks past their expiry")

    worker = bot_worker("host-a")
    wait_for(lambda: Bot.objects.get(pk=wanted.pk).status == Status.RUNNING, timeout=30, what="operator start ran")
    wait_for(lambda: discarded(worker.proc.output(), "bots.tasks.reconcile_bot"), timeout=10, what="bot reconcile")
    wait_for(lambda: discarded(worker.proc.output(), "bots.tasks.reconcile_host"), timeout=10, what="host reconcile")
    stale.refresh_from_db()
    assert (stale.status, stale.pid) == (Status.STOPPED, None)
    assert not AuditLog.objects.filter(target=stale.slug).exists()


def test_beats_reconcile_schedule_expires_its_runs_and_old_installs_get_the_expiry(db):
    install()
    task = PeriodicTask.objects.get(name="reconcile bots")
    assert task.expire_seconds == 10 and task.interval.every == 10
    PeriodicTask.objects.filter(pk=task.pk).update(expire_seconds=None)  # installed before the expiry existed
    assert install()["updated"] == 1
    assert PeriodicTask.objects.get(pk=task.pk).expire_seconds == 10
    assert install()["updated"] == 0
