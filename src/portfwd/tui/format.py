"""How a forward's values read on screen: status words, human units, durations.

Pure functions (no Textual), so they are trivially testable and the table, the log view and
the toasts all say the same thing the same way.

Every string here that comes from outside (names from the kubeconfig, the session file or the
API, error text) has its control characters escaped (`portfwd.safetext`): these helpers are
what the screens show, so nothing from outside reaches the terminal raw. Screens put the
results in `rich.text.Text` (never markup), so brackets show as themselves.
"""

from __future__ import annotations

import math
from datetime import datetime, tzinfo

from rich.text import Text

from portfwd.engine.model import ForwardSnapshot, ForwardState, LogLevel
from portfwd.safetext import escape_controls

# Colour AND a symbol/word, so the state reads without colour too.
STATUS_STYLE: dict[ForwardState, tuple[str, str]] = {
    ForwardState.ACTIVE: ("●", "bold green"),
    ForwardState.STARTING: ("◌", "yellow"),
    ForwardState.RECONNECTING: ("↻", "dark_orange"),
    ForwardState.ERROR: ("✖", "bold red"),
    ForwardState.STOPPED: ("■", "grey50"),
}

LEVEL_STYLE: dict[LogLevel, str] = {
    LogLevel.DEBUG: "grey50",
    LogLevel.INFO: "cyan",
    LogLevel.WARNING: "yellow",
    LogLevel.ERROR: "bold red",
}


# Shown after the status of a forward whose auto-reconnect is off.
NO_RECONNECT_MARK = "⊘"


def status_text(state: ForwardState) -> Text:
    symbol, style = STATUS_STYLE[state]
    return Text(f"{symbol} {state.value}", style=style)


def retry_in(snap: ForwardSnapshot, now: float) -> int | None:
    """Whole seconds to the next retry (rounded up, never negative); None: none scheduled."""
    if snap.next_retry_at is None:
        return None
    return max(0, math.ceil(snap.next_retry_at - now))


def status_cell(snap: ForwardSnapshot, now: float) -> Text:
    """The status word, plus the attempt and a countdown while it retries
    (`↻ reconnecting #3 · 4s`), plus a mark when auto-reconnect is off."""
    text = status_text(snap.state)
    if snap.state is ForwardState.RECONNECTING and snap.attempt > 0:
        text.append(f" #{snap.attempt}")
    seconds = retry_in(snap, now)
    if seconds is not None and snap.state is not ForwardState.ACTIVE:
        text.append(f" · {human_duration(seconds)}")
    if not snap.spec.reconnect:
        text.append(f" {NO_RECONNECT_MARK}", style="bold")
    return text


def reconnect_text(snap: ForwardSnapshot) -> str:
    """For the detail line and the log title: the reconnect count and whether it is off."""
    parts = []
    if snap.stats.reconnects:
        n = snap.stats.reconnects
        parts.append(f"{n} reconnect{'s' if n != 1 else ''}")
    if not snap.spec.reconnect:
        parts.append(f"{NO_RECONNECT_MARK} auto-reconnect off")
    return " · ".join(parts)


def human_bytes(n: int) -> str:
    if n < 1024:
        return f"{n} B"
    value = float(n)
    for unit in ("KiB", "MiB", "GiB", "TiB"):
        value /= 1024
        if value < 1024 or unit == "TiB":
            return f"{value:.1f} {unit}"
    return f"{n} B"  # unreachable


def human_rate(bytes_per_s: float) -> str:
    return f"{human_bytes(int(bytes_per_s))}/s"


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


def context_text(snap: ForwardSnapshot) -> str:
    """The context it runs in (resolved), else the one asked for; "" = the current one."""
    return escape_controls(snap.context or snap.spec.context or "")


def namespace_text(snap: ForwardSnapshot) -> str:
    return escape_controls(snap.namespace or snap.spec.namespace or "")


def target_text(snap: ForwardSnapshot) -> str:
    return escape_controls(snap.spec.target)


def reason_text(reason: str) -> str:
    """An error or note: the API's or the kubelet's words, one line."""
    return escape_controls(reason)


def uptime_text(snap: ForwardSnapshot, now: float) -> str:
    if snap.state in (ForwardState.ACTIVE, ForwardState.RECONNECTING) and snap.started_at:
        return human_duration(now - snap.started_at)
    return "-"


def local_text(snap: ForwardSnapshot) -> str:
    if snap.bound:
        addrs = [f"[{a}]:{p}" if ":" in a else f"{a}:{p}" for a, p in snap.bound]
        return escape_controls(", ".join(addrs))
    port = snap.spec.local_port or "auto"
    addr = snap.spec.addresses[0] if snap.spec.addresses else "127.0.0.1"
    if ":" in addr:
        addr = f"[{addr}]"
    return escape_controls(f"{addr}:{port}")


def remote_text(snap: ForwardSnapshot) -> str:
    """The remote side: what the user asked for, and what it resolved to."""
    asked = str(snap.spec.remote_port)
    if snap.remote_port:
        resolved = str(snap.remote_port)
        name = snap.port_name
        if asked not in (resolved, name):
            # e.g. a Service port 80 whose targetPort is the named port "echo" (9000)
            text = f"{asked} → {resolved}" + (f" ({name})" if name else "")
        else:
            text = resolved + (f" ({name})" if name else "")
        return escape_controls(text)  # the port name is the API's
    return escape_controls(asked)


def target_pod_text(snap: ForwardSnapshot) -> str:
    if snap.spec.target.startswith("pod/") or "/" not in snap.spec.target:
        return ""  # the target is the pod itself
    return escape_controls(snap.pod or "-")


def forward_label(snap: ForwardSnapshot) -> str:
    """Short name for toasts and titles: `svc/echo 8080→80`."""
    label = f"{snap.spec.target} {snap.local_port or 'auto'}→{snap.spec.remote_port}"
    return escape_controls(label)


def log_time(ts: float, tz: tzinfo | None) -> str:
    return datetime.fromtimestamp(ts, tz=tz).strftime("%H:%M:%S.%f")[:-3]


def url_for(snap: ForwardSnapshot) -> str | None:
    port = snap.local_port
    return f"http://localhost:{port}" if port else None
