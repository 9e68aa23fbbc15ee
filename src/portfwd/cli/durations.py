"""Go's duration syntax (`1m30s`, `500ms`), which kubectl's flags take
(--pod-running-timeout); the parser lives in `portfwd.humanize` (the profiles read durations
too), named here for the command line's modules."""

from __future__ import annotations

from portfwd.humanize import parse_duration

__all__ = ["parse_duration"]
