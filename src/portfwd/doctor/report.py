"""How `portfwd doctor` shows its checks: one line each, or one JSON document."""

from __future__ import annotations

import json

from portfwd.doctor.model import MARKS, Check
from portfwd.safetext import escape_controls


def text(checks: list[Check]) -> str:
    width = max((len(c.title) for c in checks), default=0)
    lines = []
    for check in checks:
        line = f"{MARKS[check.status]} {check.title.ljust(width)}  {check.summary}"
        if check.fix:
            line += f" — fix: {check.fix}"
        lines.append(escape_controls(line))
    failed = sum(c.status == "fail" for c in checks)
    lines.append(
        f"{failed} check{'s' if failed != 1 else ''} failed"
        if failed
        else "everything portfwd needs works"
    )
    return "\n".join(lines) + "\n"


def as_json(checks: list[Check], context: str | None) -> str:
    doc = {
        "ok": not any(c.status == "fail" for c in checks),
        "context": context,
        "checks": [c.to_dict() for c in checks],
    }
    return json.dumps(doc, indent=2) + "\n"  # ASCII only: escapes every control character
