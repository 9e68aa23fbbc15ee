"""Label and field selectors as the API server parses them (the query-string forms).

Label selectors: `labelselector.py` (apimachinery's grammar and error texts). Field
selectors: `f=v`, `f==v`, `f!=v` on a few dotted paths (kubectl uses `metadata.name`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from portfwd.sandbox.labelselector import Predicate, SelectorError, parse_label_selector


def _split_requirements(text: str) -> list[str]:
    """Split a field selector on commas that are not inside parentheses."""
    parts: list[str] = []
    depth = 0
    cur = ""
    for ch in text:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append(cur)
            cur = ""
        else:
            cur += ch
    parts.append(cur)
    return [p.strip() for p in parts if p.strip()]


def _field(obj: Mapping[str, Any], path: str) -> str | None:
    cur: Any = obj
    for part in path.split("."):
        if not isinstance(cur, Mapping):
            return None
        cur = cur.get(part)
    if cur is None:
        return None
    return str(cur)


FIELDS_ALLOWED = {
    "metadata.name",
    "metadata.namespace",
    "status.phase",
    "spec.nodeName",
    "status.podIP",
    "involvedObject.name",
    "involvedObject.namespace",
    "involvedObject.uid",
    "involvedObject.kind",
    "type",
    "reason",
}


def _field_pred(path: str, value: str, *, negate: bool) -> Callable[[Mapping[str, Any]], bool]:
    def pred(obj: Mapping[str, Any]) -> bool:
        return (_field(obj, path) == value) != negate

    return pred


def parse_field_selector(text: str | None) -> Callable[[Mapping[str, Any]], bool]:
    """Parse a field selector over an object (only the fields real servers index)."""
    if not text or not text.strip():
        return lambda obj: True
    preds: list[Callable[[Mapping[str, Any]], bool]] = []
    for req in _split_requirements(text):
        for op in ("!=", "==", "="):
            if op in req:
                path, _, value = req.partition(op)
                path = path.strip()
                value = value.strip()
                if path not in FIELDS_ALLOWED:
                    raise SelectorError(f"field label not supported: {path}")
                preds.append(_field_pred(path, value, negate=op == "!="))
                break
        else:
            raise SelectorError(f"invalid selector: '{req}'; can't understand '{req}'")
    return lambda obj: all(p(obj) for p in preds)


def selector_matches(selector: Mapping[str, str], labels: Mapping[str, str]) -> bool:
    """A Service / workload `matchLabels` selector; an empty one selects nothing here."""
    if not selector:
        return False
    return all(labels.get(k) == v for k, v in selector.items())


def selector_string(selector: Mapping[str, str]) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted(selector.items()))


__all__ = [
    "Predicate",
    "SelectorError",
    "parse_field_selector",
    "parse_label_selector",
    "selector_matches",
    "selector_string",
]
