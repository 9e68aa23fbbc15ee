"""Go's duration syntax (`1m30s`, `500ms`), which kubectl's flags take
(--pod-running-timeout); a pure parser, so the options can check one without importing the
cluster client."""

from __future__ import annotations

import re

from portfwd.errors import InputError

_UNITS = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,
    "μs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
}
_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)")
_FORM = "a duration such as 30s, 2m or 1m30s (Go's time.ParseDuration syntax, as kubectl)"


def parse_duration(text: str) -> float:
    """Seconds in a Go duration string (`1m30s`, `500ms`, `1.5h`); must be above zero, as
    kubectl requires for --pod-running-timeout. A bare number is refused, as in Go."""
    raw = text.strip()
    pos, total = 0, 0.0
    while pos < len(raw):
        match = _PART.match(raw, pos)
        if match is None:
            break
        total += float(match.group(1)) * _UNITS[match.group(2)]
        pos = match.end()
    if not raw or pos != len(raw):
        raise InputError(f"{text!r} is not {_FORM}")
    if total <= 0:
        raise InputError(f"{text!r} is not higher than zero")
    return total
