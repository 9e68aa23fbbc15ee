"""How a forward's values read on screen: status words, human units, durations.

Pure functions (no Textual), so they are trivially testable and the table, the log view and
the toasts all say the same thing the same way; a forward's sides, uptime and label are
`engine/present.py`'s, the words `portfwd ls` uses too.

Every string here that comes from outside (names from the kubeconfig, the session file or the
API, error text) has its control characters escaped (`portfwd.safetext`): these helpers are
what the screens show, so nothing from outside reaches the terminal raw. Screens put the
results in `rich.text.Text` (never markup), so brackets show as themselves.
"""

from __future__ import annotations

import math
import re
from datetime import datetime, tzinfo

from rich.text import Text

from portfwd.engine import present
from portfwd.engine.model import ForwardSnapshot, ForwardState, LogLevel
from portfwd.humanize import human_bytes, human_duration
from portfwd.safetext import escape_controls

# Colour AND a symbol/word, so the state reads without colour too.
STATUS_STYLE: dict[ForwardState, tuple[str, str]] = {
    ForwardState.ACTIVE: ("●", "bold green"),
    ForwardState.STARTING: ("◌", "yellow"),
    ForwardState.RECONNECTING: ("↻", "dark_orange"),
    ForwardState.DEGRADED: ("◐", "bold gold1"),  # serving, but its probe fails
    ForwardState.ERROR: ("✖", "bold red"),
    ForwardState.STOPPED: ("■", "grey50"),
    ForwardState.IDLE: ("◌", "cyan"),  # lazy: bound, no tunnel until a connection arrives
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


def status_compact(snap: ForwardSnapshot, now: float) -> Text:
    """The narrow form: the word and the countdown, without the attempt number."""
    text = status_text(snap.state)
    seconds = retry_in(snap, now)
    if seconds is not None and snap.state is not ForwardState.ACTIVE:
        text.append(f" {human_duration(seconds)}")
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


def human_rate(bytes_per_s: float) -> str:
    return f"{human_bytes(int(bytes_per_s))}/s"


def short_bytes(n: float) -> str:
    """A narrow count for the rate column: 512B, 1.5K, 12K, 3.0M, 120M."""
    value = float(n)
    for unit in ("B", "K", "M", "G"):
        if value < 1024 or unit == "G":
            if unit == "B":
                return f"{int(value)}B"
            return f"{value:.1f}{unit}" if value < 10 else f"{value:.0f}{unit}"
        value /= 1024
    return f"{value:.0f}T"  # unreachable


# The long context names clouds write, and the part of each that names the cluster:
# EKS's ARN (`arn:aws:eks:REGION:ACCOUNT:cluster/NAME`), eksctl's
# `USER@NAME.REGION.eksctl.io`, GKE's `gke_PROJECT_ZONE_NAME`, and OpenShift's
# `NAMESPACE/API-HOST:PORT/USER`.
_CLOUD_CONTEXTS = (
    re.compile(r"^arn:aws[\w-]*:eks:[\w-]+:\d+:cluster/(?P<name>.+)$"),
    re.compile(r"^[^@]+@(?P<name>[^.]+)\.[\w-]+\.eksctl\.io$"),
    re.compile(r"^gke_[^_]+_[^_]+_(?P<name>.+)$"),
    re.compile(r"^[^/]+/(?P<name>[^/:]+)(?::\d+)?/[^/]+$"),
)


def context_tag(name: str) -> str:
    """A context as the table's Context column shows it: the cluster's own name out of a
    cloud's long form (an EKS ARN is 50 cells of which the end tells clusters apart), else
    the name. The detail pane and the header keep the whole name."""
    for pattern in _CLOUD_CONTEXTS:
        if found := pattern.match(name):
            return found["name"]
    return name


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
    """How long it has been active; "-" in any other state."""
    return present.uptime(snap, now)


def uptime_cell(snap: ForwardSnapshot, now: float) -> str:
    """The table's uptime: `<1m` for the first minute, then minutes, like kubectl's AGE
    after its first minute. A column of seconds would redraw every row every second; in
    minutes an idle dashboard draws a row once a minute (issue 22). The detail pane has the
    seconds (`uptime_text`)."""
    text = present.uptime(snap, now)
    return "<1m" if text.endswith("s") and text[:-1].isdigit() else text


def local_text(snap: ForwardSnapshot) -> str:
    """Where it listens (`localhost:8080` for both loopback addresses)."""
    return escape_controls(present.local_side(snap))


def local_compact(snap: ForwardSnapshot) -> str:
    """The narrow form: the port alone while it listens on loopback only."""
    return escape_controls(present.local_compact(snap))


def remote_text(snap: ForwardSnapshot) -> str:
    """The remote side: what the user asked for, and what it resolved to."""
    return escape_controls(present.remote_side(snap))  # the port name is the API's


def remote_compact(snap: ForwardSnapshot) -> str:
    """The narrow form: `80→9000`, without the port's name."""
    return escape_controls(present.remote_compact(snap))


def remote_short(snap: ForwardSnapshot) -> str:
    """The narrowest form: the remote port as asked (`443`), what it resolved to aside."""
    return escape_controls(str(snap.spec.remote_port))


def name_text(snap: ForwardSnapshot) -> str:
    """What `portfwd stop NAME` and the profiles call it: its name, else its id."""
    return escape_controls(snap.spec.name or snap.id)


def target_pod_text(snap: ForwardSnapshot) -> str:
    if snap.spec.target.startswith("pod/") or "/" not in snap.spec.target:
        return ""  # the target is the pod itself
    return escape_controls(snap.pod or "-")


def forward_label(snap: ForwardSnapshot) -> str:
    """Short name for toasts and titles: `svc/echo 8080→80`."""
    return escape_controls(present.forward_label(snap))


def log_time(ts: float, tz: tzinfo | None) -> str:
    return datetime.fromtimestamp(ts, tz=tz).strftime("%H:%M:%S.%f")[:-3]


HTTPS_PORTS = frozenset({443, 8443})


def speaks_tls(snap: ForwardSnapshot) -> bool:
    """A port named `https` (asked for or resolved), or numbered 443 or 8443."""
    names = {snap.port_name, str(snap.spec.remote_port)}
    numbers = {snap.remote_port, snap.spec.remote_port}
    return "https" in names or bool(HTTPS_PORTS & {n for n in numbers if isinstance(n, int)})


def url_for(snap: ForwardSnapshot) -> str | None:
    port = snap.local_port
    if not port:
        return None
    return f"{'https' if speaks_tls(snap) else 'http'}://localhost:{port}"


def port_prompt(
    port: int, name: str, protocol: str, detail: str, *, marked: bool, disabled: str
) -> Text:
    """One port in a list to pick from: `[x]    80/TCP   http  → targetPort echo`."""
    prompt = Text("[x] " if marked else "[ ] ", style="bold green" if marked else "dim")
    prompt.append(escape_controls(f"{port:>5}/{protocol:<4}"), style="dim" if disabled else "bold")
    prompt.append(escape_controls(f"  {name or '-':<12}"), style="dim" if disabled else "cyan")
    if detail:
        prompt.append(escape_controls(f" {detail}"), style="dim")
    if disabled:
        prompt.append(escape_controls(f"  — disabled: {disabled}"), style="dim italic")
    return prompt
