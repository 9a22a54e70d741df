"""`make bench`: run every benchmark and write docs/PERFORMANCE.md.

Each benchmark is a script in bench/ named *_bench.py that prints a Markdown section to
stdout (and its progress to stderr). This runner migrates the benchmark database, runs
them one after another on an otherwise idle machine, and writes their sections with the
machine's facts. Targets are checked here, never by timed assertions in tests.
"""

from __future__ import annotations

import datetime as dt
import os
import platform
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "docs" / "PERFORMANCE.md"


def machine() -> str:
    meminfo = Path("/proc/meminfo").read_text().splitlines()
    cpuinfo = Path("/proc/cpuinfo").read_text().splitlines()
    mem_kb = next(int(line.split()[1]) for line in meminfo if line.startswith("MemTotal"))
    cpu = next((line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name")), "?")
    return f"{os.cpu_count()} cores ({cpu}), {mem_kb / 1024 / 1024:.1f} GiB, Python {platform.python_version()}"


def previous_sections() -> dict[str, str]:
    """The sections of the current docs/PERFORMANCE.md, by the script named in their heading."""
    if not OUT.exists():
        return {}
    sections = {}
    for chunk in OUT.read_text().split("\n## ")[1:]:
        match = re.search(r"\(bench/(\w+\.py)\)", chunk.splitlines()[0])
        if match:
            sections[match.group(1)] = "## " + chunk.strip() + "\n"
    return sections


def main() -> int:
    only = sys.argv[1:]
    scripts = sorted(p for p in (ROOT / "bench").glob("*_bench.py") if not only or p.stem in only)
    subprocess.run([sys.executable, "manage.py", "migrate", "--verbosity", "0"], cwd=ROOT, check=True)
    # A subset run (make bench BENCH=...) replaces only its own sections.
    sections = previous_sections() if only else {}
    failed = []
    for script in scripts:
        print(f"bench: running {script.name}", file=sys.stderr)
        result = subprocess.run([sys.executable, str(script)], cwd=ROOT, stdout=subprocess.PIPE, text=True)
        if result.returncode != 0:
            failed.append(script.name)
            sections[script.name] = f"## {script.stem} (bench/{script.name})\n\nFAILED (exit {result.returncode})\n"
        else:
            sections[script.name] = result.stdout.strip() + "\n"
    header = (
        "# Performance\n\n"
        f"Measured {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC on {machine()}, "
        "with `make bench` (PostgreSQL 15 and Redis started by scripts/services.sh). "
        "Targets are the project's design targets for a 2-core machine; the guide's own targets are "
        "looser. Numbers vary a few percent between runs.\n"
    )
    OUT.write_text(header + "\n" + "\n".join(sections[name] for name in sorted(sections)))
    print(f"bench: wrote {OUT.relative_to(ROOT)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
