"""Numbers as people read them: bytes in binary units, durations like kubectl's AGE.

Pure functions shared by every front end (the dashboard, `portfwd ls`, `daemon status`), so
a byte count or an uptime reads the same everywhere.
"""

from __future__ import annotations


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
