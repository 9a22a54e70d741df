"""The web app's /metrics: the backup metrics ops declares, and the renderer that joins
every worker's samples, the stored metrics and the scrape-time collectors."""

from __future__ import annotations

import os
from pathlib import Path

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector

from deia.broker import TASKS_REJECTED  # noqa: F401  (the web exports what workers count)
from deia.metrics import (
    RUNNER_ONLY,
    SCRAPE_COLLECTORS,
    StoredMetric,
    StoredMetricsCollector,
    declare,
    update_pool_gauges,
)
from ops.health import WEB_REGISTRY, refresh_health
from ops.maintenance.runs import first_run

# --- backup (written by the backup job) ----------------------------------------------
# The run metrics of every maintenance job, labelled from the job registry, are declared
# where runs are recorded (ops.maintenance.recording).
BACKUP_LAST_SUCCESS = declare(
    StoredMetric("deia_backup_last_success_timestamp_seconds", "gauge", "Unix time of the last good backup.")
)
BACKUP_SIZE = declare(StoredMetric("deia_backup_size_bytes", "gauge", "Size of the last good backup."))


def collect_first_backup():
    """deia_backup_first_due_timestamp_seconds, only while the first scheduled backup is to come.

    A fresh install has no backup before the schedule's first run; DeiaBackupTooOld holds
    its fire until this time (the first run's time plus its time limit) has passed.
    """
    first = first_run("backup")
    if first is not None:
        yield GaugeMetricFamily(
            "deia_backup_first_due_timestamp_seconds",
            "Unix time by which the first scheduled backup has ended (only while no backup run has finished).",
            value=first.deadline.timestamp(),
        )


SCRAPE_COLLECTORS.append(collect_first_backup)


# --- rendering ----------------------------------------------------------------------
class _ScrapeTime:
    def collect(self):
        for collect in SCRAPE_COLLECTORS:
            yield from collect()
        yield from StoredMetricsCollector().collect()


class _WebOnly:
    def __init__(self, *registries: CollectorRegistry) -> None:
        self.registries = registries

    def collect(self):
        for registry in self.registries:
            for family in registry.collect():
                if family.name not in RUNNER_ONLY:
                    yield family


class WebProcessesCollector:
    """process_* of the gunicorn master and each live worker, labelled by pid.

    One worker's figures would jump between workers from scrape to scrape (the CPU counter
    would run backwards); a series per pid is a true counter, and sum() over pids gives
    the whole web's CPU and memory. A pid changes only when a worker is replaced.
    """

    def __init__(self, master: int) -> None:
        self.master = master

    def pids(self) -> list[int]:
        try:
            children = Path(f"/proc/{self.master}/task/{self.master}/children").read_text().split()
        except OSError:
            return [os.getpid()]
        return [self.master, *(int(pid) for pid in children)]

    def collect(self):
        merged: dict[str, Metric] = {}
        for pid in self.pids():
            for family in ProcessCollector(pid=lambda pid=pid: pid, registry=None).collect():
                target = merged.setdefault(family.name, Metric(family.name, family.documentation, family.type))
                for sample in family.samples:
                    target.add_sample(sample.name, {**sample.labels, "pid": str(pid)}, sample.value)
        yield from merged.values()


def _process_collector():
    master = os.environ.get("DEIA_WEB_MASTER_PID", "")
    if master.isdigit() and int(master) == os.getppid():
        return WebProcessesCollector(int(master))
    return ProcessCollector(registry=None)


def render_web_metrics() -> tuple[bytes, str]:
    refresh_health()
    update_pool_gauges()
    extra = CollectorRegistry(auto_describe=False)
    extra.register(_ScrapeTime())
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        # Every gunicorn worker's counters, histograms and live gauges, summed.
        files = CollectorRegistry()
        MultiProcessCollector(files)
        source = _WebOnly(files)
        # The multiprocess collector has no process_* of its own.
        extra.register(_process_collector())
    else:
        source = _WebOnly(REGISTRY, WEB_REGISTRY)
    return generate_latest(source) + generate_latest(extra), CONTENT_TYPE_LATEST
