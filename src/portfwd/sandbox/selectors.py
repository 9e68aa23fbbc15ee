"""Label and field selectors as the API server parses them (the query-string forms).

Label selector grammar (k8s.io/apimachinery/pkg/labels): comma-separated requirements
`k=v`, `k==v`, `k!=v`, `k in (a,b)`, `k notin (a,b)`, `k`, `!k`. Field selectors: `f=v`,
`f==v`, `f!=v` on a few dotted paths (kubectl uses `metadata.name`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any


class SelectorError(ValueError):
    """A selector the API server would reject with 400 BadRequest."""


Predicate = Callable[[Mapping[str, str]], bool]

_SET_RE = re.compile(r"^\s*(!?)\s*([A-Za-z0-9_./-]+)\s+(in|notin)\s+\(([^)]*)\)\s*$")
_KEY_RE = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9_./-]*[A-Za-z0-9])?$")


def _split_requirements(text: str) -> list[str]:
    """Split on commas that are not inside parentheses."""
    parts: list[str] = []
    depth = 0
    cur = ""
    for ch in text:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
            if depth < 0:
                raise SelectorError(f"unable to parse requirement: unbalanced ')' in {text!r}")
        if ch == "," and depth == 0:
            parts.append(cur)
            cur = ""
        else:
            cur += ch
    if depth != 0:
        raise SelectorError(f"unable to parse requirement: unbalanced '(' in {text!r}")
    parts.append(cur)
    return [p.strip() for p in parts if p.strip()]


def _check_key(key: str) -> str:
    if not _KEY_RE.match(key):
        raise SelectorError(f"unable to parse requirement: invalid label key {key!r}")
    return key


def _requirement(req: str) -> Predicate:
    m = _SET_RE.match(req)
    if m:
        if m.group(1):
            raise SelectorError(f"unable to parse requirement: {req!r}")
        key = _check_key(m.group(2))
        values = {v.strip() for v in m.group(4).split(",") if v.strip()}
        if m.group(3) == "in":
            return lambda labels: labels.get(key) in values
        return lambda labels: labels.get(key) not in values
    for op in ("!=", "==", "="):
        if op in req:
            key, _, value = req.partition(op)
            key = _check_key(key.strip())
            value = value.strip()
            if op == "!=":
                return lambda labels: labels.get(key) != value
            return lambda labels: labels.get(key) == value
    if req.startswith("!"):
        key = _check_key(req[1:].strip())
        return lambda labels: key not in labels
    key = _check_key(req)
    return lambda labels: key in labels


def parse_label_selector(text: str | None) -> Predicate:
    """Parse a label selector; an empty or missing one matches everything."""
    if not text or not text.strip():
        return lambda labels: True
    preds = [_requirement(r) for r in _split_requirements(text)]
    return lambda labels: all(p(labels) for p in preds)


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
                    raise SelectorError(f'field label not supported: "{path}"')
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
