"""The daily health report: diagnose's checks, recorded as a maintenance run."""

from __future__ import annotations

from ops.diagnose import Level, overall, run_diagnose, summary
from ops.maintenance.runs import JobFailed, Outcome


def health_report() -> Outcome:
    checks = run_diagnose()
    details = {"checks": [c.as_dict() for c in checks]}
    level = overall(checks)
    not_ok = "; ".join(f"{c.level.name} {c.name}: {c.value}" for c in checks if c.level != Level.OK)
    text = summary(checks) + (f" - {not_ok}" if not_ok else "")
    if level == Level.CRIT:
        raise JobFailed(text, details)
    return Outcome(text, details, "warning" if level == Level.WARN else "ok")
