"""The documentation pages, read as the docs tests see them: fenced blocks, markers, expectations.

Conventions a page follows (checked by tests/docs/test_markers.py):

- Every fenced block names its language. Shell blocks are ```sh, ```bash, ```console or
  ```shell and are run by tests/docs/test_blocks_run.py; ```json, ```text, ```nft … are
  shown, never run. A block without a language is an error: say what it is.
- A shell block that cannot run in the tests carries, as the last paragraph before its
  fence, the visible line

      *Not run by the docs test: <reason>.*

  (systemd, sudo into another account, a host's journal, apt-get, writing to /etc …).
- What a block's text promises is written next to it as HTML comments right after the
  closing fence, one per line: `<!-- expect: <Python regex> -->`, searched (re.MULTILINE)
  in the block's standard output.
- A `promq '<expr>'` (in a shell block or in the prose) is evaluated against the test's
  Prometheus and must return data, unless the same line carries the shell comment
  `# no data in the docs test: <reason>` (in a block), or, in the prose, the paragraph
  holding it says `(no data in the docs test: <reason>)` after it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md")), *sorted((REPO / "docs" / "runbooks").glob("*.md"))]
SHELL = {"sh", "bash", "console", "shell"}

FENCE = re.compile(r"^(?P<indent>[ \t]*)```(?P<lang>[^`\s]*)[ \t]*$")
MARKER = re.compile(r"^\s*\*Not run by the docs test: (?P<reason>[^*]+?)\.\*\s*$")
EXPECT = re.compile(r"^\s*<!-- expect: (?P<regex>.+?) -->\s*$")
PROMQ = re.compile(r"promq '(?P<expr>[^'\n]+)'")
NO_DATA = re.compile(r"no data in the docs test: (?P<reason>[^.>\n]+)")


def rel(page: Path) -> str:
    return str(page.relative_to(REPO)) if page.is_relative_to(REPO) else str(page)


@dataclass
class Block:
    page: str
    line: int  # 1-based line of the opening fence
    lang: str
    text: str
    marker: str | None = None  # the reason, when the block is marked as not run
    expect: list[str] = field(default_factory=list)

    @property
    def shell(self) -> bool:
        return self.lang in SHELL

    def __str__(self) -> str:
        return f"{self.page}:{self.line}"


def blocks(page: Path) -> list[Block]:
    """Every fenced block of a page, with the marker before it and the expectations after it."""
    lines = page.read_text().splitlines()
    found: list[Block] = []
    i = 0
    while i < len(lines):
        opening = FENCE.match(lines[i])
        if not opening:
            i += 1
            continue
        indent = len(opening["indent"])
        end = i + 1
        while end < len(lines) and lines[end].strip() != "```":
            end += 1
        body = "\n".join(line[indent:] if line[:indent].isspace() else line for line in lines[i + 1 : end])
        block = Block(rel(page), i + 1, opening["lang"], body + "\n")
        before = i - 1
        while before >= 0 and not lines[before].strip():
            before -= 1
        if before >= 0 and (marker := MARKER.match(lines[before])):
            block.marker = marker["reason"]
        after = end + 1
        while after < len(lines) and (expect := EXPECT.match(lines[after])):
            block.expect.append(expect["regex"])
            after += 1
        found.append(block)
        i = end + 1
    return found


def shell_blocks(page: Path) -> list[Block]:
    return [b for b in blocks(page) if b.shell]


@dataclass(frozen=True)
class PromQuery:
    where: str  # page:line
    expr: str
    no_data: str | None  # the reason it may be empty in the test, if marked


def prose(page: Path) -> str:
    """The page without its fenced blocks (blank lines keep the line numbers)."""
    lines = page.read_text().splitlines()
    for block in blocks(page):
        end = block.line + block.text.count("\n")
        for n in range(block.line - 1, min(end + 1, len(lines))):
            lines[n] = ""
    return "\n".join(lines)


def promql(page: Path) -> list[PromQuery]:
    """Every `promq '…'` of a page: in its shell blocks and in its prose."""
    queries = []
    for block in shell_blocks(page):
        for n, line in enumerate(block.text.splitlines(), start=block.line + 1):
            for match in PROMQ.finditer(line):
                reason = NO_DATA.search(line[match.end() :])
                queries.append(PromQuery(f"{block.page}:{n}", match["expr"], reason and reason["reason"]))
    text = prose(page)
    for match in PROMQ.finditer(text):
        line = text.count("\n", 0, match.start()) + 1
        # the sentence the query is in, up to the next blank line
        rest = text[match.end() :].split("\n\n", 1)[0]
        reason = NO_DATA.search(rest)
        queries.append(PromQuery(f"{rel(page)}:{line}", match["expr"], reason and reason["reason"]))
    return queries
