"""The one-way layers deia <- bots <- ops are import-linter's contract (pyproject.toml),
run by `make test`; these tests hold that the contract is kept and that it has teeth."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.support.procs import ROOT

LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def lint_imports(cwd: Path, pythonpath: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(pythonpath)}
    return subprocess.run([LINT_IMPORTS, "--no-cache"], cwd=cwd, env=env, capture_output=True, text=True, timeout=120)


def test_the_code_keeps_the_layers():
    result = lint_imports(ROOT, ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 kept, 0 broken" in result.stdout


def test_the_contract_breaks_when_the_ground_floor_imports_a_floor_above(tmp_path: Path):
    (tmp_path / "pyproject.toml").write_text((ROOT / "pyproject.toml").read_text())
    for package in ("deia", "bots", "ops"):
        (tmp_path / package).mkdir()
        (tmp_path / package / "__init__.py").write_text("")
    (tmp_path / "ops" / "views.py").write_text("")
    (tmp_path / "ops" / "urls.py").write_text("import bots\nimport deia\n")  # the top layer may use both
    (tmp_path / "deia" / "audit.py").write_text("import ops.views\n")
    result = lint_imports(tmp_path, tmp_path)
    assert result.returncode == 1
    assert "deia.audit -> ops.views" in result.stdout
