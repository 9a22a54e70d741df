"""Every name a documentation page mentions exists in the code (tests/docs/names.py says how
names are found and what counts as existing)."""

from __future__ import annotations

import pytest
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from .names import metric_names, unknown_names
from .pages import PAGES, rel

pytestmark = [pytest.mark.services, pytest.mark.django_db]


@pytest.fixture
def known_metrics(client) -> set[str]:
    """Families of a web scrape (served by the app in-process) and of the runner's registry."""
    import bots.metrics  # noqa: F401 - registers the runner's families in REGISTRY
    from ops import schedules

    # A fresh install as setup leaves it: deia_backup_first_due_timestamp_seconds is exported then only.
    schedules.install()
    response = client.get("/metrics", REMOTE_ADDR="127.0.0.1")
    assert response.status_code == 200, response.content
    families = [(f.name, f.type) for f in text_string_to_metric_families(response.content.decode())]
    families += [(f.name, f.type) for f in REGISTRY.collect()]
    return metric_names(families)


def test_every_name_the_docs_mention_exists(known_metrics: set[str]) -> None:
    problems = [f"{rel(page)}: {p}" for page in PAGES for p in unknown_names(page.read_text(), known_metrics)]
    assert not problems, "the docs name what the code does not have:\n" + "\n".join(problems)


def test_the_checker_catches_made_up_names(known_metrics: set[str]) -> None:
    text = """
Run `manage.py frobnicate` or `deia-manage diagnose --frob`, `deia-manage botctl explode <bot>`,
`thaw_all --force`.

| Command | What |
|---|---|
| `defrost_fridge [--now]` | made up |

```bash
promq 'rate(deia_made_up_total[5m])'   # and django_nothing_*
```

When DeiaMadeUpAlert fires, open the Made Up dashboard, read deploy/prometheus/nope.yml and set
`NOT_A_DEIA_SETTING`.
"""
    problems = unknown_names(text, known_metrics)
    assert problems == [
        "command 'defrost_fridge'",
        "command 'frobnicate'",
        "command 'thaw_all'",
        "subcommand botctl 'explode'",
        "option --frob of diagnose",
        "metric deia_made_up_total",
        "metric django_nothing_*",
        "alert DeiaMadeUpAlert",
        "dashboard 'Made Up'",
        "file deploy/prometheus/nope.yml",
        "setting NOT_A_DEIA_SETTING",
    ]


def test_the_checker_accepts_real_names(known_metrics: set[str]) -> None:
    text = """`deia-manage diagnose --json`, `manage.py botctl restart <bot>`,
`manage.py apitoken create <user> --expires-days N`, `deia_bot_startup_seconds_bucket`, `django_http_*`,
DeiaWebDown, the Cache Performance dashboard,
deploy/systemd/deia-{web,worker}.service, docs/runbooks/<alert>.md, `DB_POOL_MAX_SIZE`, `GUNICORN_WORKERS`."""
    assert unknown_names(text, known_metrics) == []
