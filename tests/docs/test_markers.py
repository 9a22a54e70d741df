"""The docs' blocks follow the conventions of tests/docs/pages.py, and the blocks the docs
test does not run are exactly the ones listed here.

NOT_RUN holds, per page, how many shell blocks carry the visible marker
`*Not run by the docs test: <reason>.*`. Marking a block, removing a marker or adding a
block that needs one changes a count and fails here until the table says so; an unmarked
block that cannot run fails tests/docs/test_blocks_run.py.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from .pages import MARKER, PAGES, SHELL, blocks, rel, shell_blocks

NOT_RUN = {
    "README.md": 2,  # make run (foreground until Ctrl-C), make test (the suite itself)
    # a drain of a real fleet; the walk-through's terminals (make run, a second host, its kill)
    "docs/MULTI_HOST.md": 6,
    # install.sh, root's secrets, systemctl, the installed Alertmanager, Grafana's files
    # (deploy/install.sh's test runs the install and the Alertmanager check).
    "docs/OPS_BUNDLE.md": 5,
    # apt-get, /etc, systemctl on the database host; SHOW POOLS needs a PgBouncer the docs
    # system has not (tests/integration/pgbouncer starts its own).
    "docs/PGBOUNCER.md": 2,
    "docs/runbooks/README.md": 2,  # deia-manage's sudo definition; systemctl/journalctl
    "docs/runbooks/database-connections.md": 1,
    "docs/runbooks/deia-backup-too-old.md": 1,
    "docs/runbooks/deia-bot-crash-loop.md": 1,
    "docs/runbooks/deia-bot-start-errors.md": 1,
    "docs/runbooks/deia-host-draining-too-long.md": 2,  # needs a draining host; amtool on the installed Alertmanager
    "docs/runbooks/deia-host-lost.md": 1,  # on the lost host: systemd, its journal
    "docs/runbooks/deia-llm-backend-down.md": 1,
    "docs/runbooks/deia-maintenance-job-failed.md": 1,
    "docs/runbooks/deia-restore-check-failing.md": 1,
    "docs/runbooks/deia-web-absent.md": 2,  # the host's /etc/prometheus
    "docs/runbooks/deia-web-down.md": 1,
    "docs/runbooks/high-error-rate.md": 1,
    "docs/runbooks/high-memory-usage.md": 4,  # cgtop, the kernel journal, reload, CONFIG REWRITE
    "docs/runbooks/host-cpu-high.md": 1,
    "docs/runbooks/host-disk-space-low.md": 1,
    "docs/runbooks/postgres-down.md": 1,
    "docs/runbooks/redis-down.md": 1,
    "docs/runbooks/service-outage.md": 4,
    "docs/runbooks/watchdog.md": 1,  # systemd, Alertmanager, the journal
}


def marked_counts(pages: list[Path]) -> dict[str, int]:
    counts = {rel(page): sum(1 for b in shell_blocks(page) if b.marker) for page in pages}
    return {page: n for page, n in counts.items() if n}


def test_the_blocks_not_run_are_the_listed_ones() -> None:
    assert marked_counts(PAGES) == NOT_RUN


@pytest.mark.parametrize("page", PAGES, ids=rel)
def test_every_block_says_its_language(page: Path) -> None:
    unlabelled = [str(b) for b in blocks(page) if not b.lang]
    assert not unlabelled, f"fenced blocks without a language (```bash, ```text, ```json …): {unlabelled}"


@pytest.mark.parametrize("page", PAGES, ids=rel)
def test_markers_and_expectations_sit_on_runnable_shell_blocks(page: Path) -> None:
    problems = [f"{b}: a marker on a ```{b.lang} block" for b in blocks(page) if b.marker and not b.shell]
    # A marked block may carry expectations only when its marker names the test that runs it.
    problems += [
        f"{b}: expectations on a block that is not run"
        for b in blocks(page)
        if b.expect and b.marker and not re.search(r"tests/\S+\.py runs", b.marker)
    ]
    problems += [f"{b}: expectations on a ```{b.lang} block" for b in blocks(page) if b.expect and not b.shell]
    for block in blocks(page):
        for regex in block.expect:
            try:
                re.compile(regex)
            except re.error as exc:
                problems.append(f"{block}: expect {regex!r} is not a regex: {exc}")
    marked_lines = {b.line for b in blocks(page) if b.marker}
    lines = page.read_text().splitlines()
    for n, line in enumerate(lines, start=1):
        if "Not run by the docs test" not in line:
            continue
        if not MARKER.match(line):
            problems.append(f"{rel(page)}:{n}: a marker not in the form *Not run by the docs test: <reason>.*")
        following = next((m for m in range(n, len(lines)) if lines[m].strip()), None)
        if following is None or following + 1 not in marked_lines:
            problems.append(f"{rel(page)}:{n}: a marker not right before a shell block")
    assert not problems, "\n".join(problems)


def test_a_new_unmarked_or_newly_marked_block_changes_the_count(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text(
        "Run:\n\n```bash\ndeia-manage diagnose\n```\n<!-- expect: ^OK -->\n\n"
        "*Not run by the docs test: needs systemd.*\n\n```sh\nsystemctl status deia-web\n```\n\n"
        "```json\n{}\n```\n"
    )
    found = blocks(page)
    assert [(b.lang, b.marker, b.expect) for b in found] == [
        ("bash", None, ["^OK"]),
        ("sh", "needs systemd", []),
        ("json", None, []),
    ]
    assert all(lang in SHELL for lang in ("bash", "sh"))
    before = sum(1 for b in shell_blocks(page) if b.marker)
    page.write_text(page.read_text() + "\n*Not run by the docs test: needs sudo.*\n\n```bash\nsudo true\n```\n")
    assert sum(1 for b in shell_blocks(page) if b.marker) == before + 1
