"""The HEALTH cell of `portfwd ls -o wide`: the per-layer facts in a few words.

Drawn from the record as the daemon sends it (`engine/serial.py`'s shape), without importing
the engine (see listing.py): `ping 3 ms, probe ok, creds 42m`. A failing probe's reason is the
LAST ERROR column's (the forward is `degraded`); -o json has every fact with its time.
"""

from __future__ import annotations

from typing import Any

from portfwd.humanize import human_duration


def health_cell(data: dict[str, Any], now: float) -> str:
    facts = data.get("health") or {}
    spec = data.get("spec") or {}
    parts = []
    rtt = facts.get("ping_rtt")
    if isinstance(rtt, int | float) and not isinstance(rtt, bool):
        parts.append(f"ping {rtt * 1000:.0f} ms" if rtt >= 0.01 else f"ping {rtt * 1000:.1f} ms")
    if spec.get("probe"):
        ok = facts.get("probe_ok")
        parts.append("probe ok" if ok is True else "probe failing" if ok is False else "probe -")
    expires = facts.get("credential_expires_at")
    if isinstance(expires, int | float) and not isinstance(expires, bool):
        left = float(expires) - now
        parts.append(f"creds {human_duration(left)}" if left > 0 else "creds expired")
    return ", ".join(parts) or "-"
