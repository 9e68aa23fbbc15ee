"""One finding of `portfwd doctor`: what was checked, how it went, what to do about it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

Status = Literal["ok", "fail", "warn", "skip"]

# ✓ works, ✗ broken (doctor exits 1), ! works with a limit worth knowing, - not checked
# (something it needs failed first).
MARKS: dict[Status, str] = {"ok": "✓", "fail": "✗", "warn": "!", "skip": "-"}


@dataclass
class Check:
    name: str  # stable key for JSON: "kubeconfig", "rbac.pods", "portforward" ...
    title: str  # what the line starts with: "kubeconfig", "RBAC pods" ...
    status: Status
    summary: str  # one line: what was found (for a failure: what is wrong)
    fix: str = ""  # what to do, for "fail" and "warn"
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "name": self.name,
            "title": self.title,
            "status": self.status,
            "summary": self.summary,
        }
        if self.fix:
            data["fix"] = self.fix
        if self.details:
            data["details"] = self.details
        return data


def ok(name: str, title: str, summary: str, **details: Any) -> Check:
    return Check(name, title, "ok", summary, details=details)


def fail(name: str, title: str, summary: str, fix: str = "", **details: Any) -> Check:
    return Check(name, title, "fail", summary, fix, details=details)


def warn(name: str, title: str, summary: str, fix: str = "", **details: Any) -> Check:
    return Check(name, title, "warn", summary, fix, details=details)


def skip(name: str, title: str, why: str) -> Check:
    return Check(name, title, "skip", f"not checked: {why}")
