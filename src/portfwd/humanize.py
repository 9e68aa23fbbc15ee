"""Numbers as people read them: bytes in binary units, durations like kubectl's AGE, and
durations as people write them (Go's `1m30s`, which kubectl's flags and the profiles take).

Pure functions shared by every front end (the dashboard, `portfwd ls`, `daemon status`), so
a byte count or an uptime reads the same everywhere.
"""

from __future__ import annotations

import re

from portfwd.errors import InputError


def human_bytes(n: int) -> str:
    if n < 1024:
        return f"{n} B"
    value = float(n)
    for unit in ("KiB", "MiB", "GiB", "TiB"):
        value /= 1024
        if value < 1024 or unit == "TiB":
            return f"{value:.1f} {unit}"
    return f"{n} B"  # unreachable


def human_duration(seconds: float) -> str:
    s = max(0, int(seconds))
    days, s = divmod(s, 86400)
    hours, s = divmod(s, 3600)
    minutes, s = divmod(s, 60)
    if days:
        return f"{days}d{hours:02d}h"
    if hours:
        return f"{hours}h{minutes:02d}m"
    if minutes:
        # Like kubectl's AGE: minutes only, so an idle dashboard repaints once a minute.
        return f"{minutes}m"
    return f"{s}s"


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


def duration_text(seconds: float) -> str:
    """`10m`, `1h30m`, `1m30s`, `250ms`: seconds as parse_duration reads them back."""
    if seconds < 1:
        return f"{seconds * 1000:.0f}ms"
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    text = (f"{hours:.0f}h" if hours else "") + (f"{minutes:.0f}m" if minutes else "")
    return text + (f"{secs:g}s" if secs or not text else "")
