"""The selected forward in full, under the table.

Folded (the default) it is a summary: state, target, where it listens and forwards to, and
the whole last error, wrapped. Unfolded (`i`) it adds the pod and its node, traffic,
connections open now with their age and bytes, the reconnect history this window saw and the
forward's recent log lines. Everything from outside is escaped (`tui.format`) and put in
`Text`, never markup.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import tzinfo

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.widgets import Static

from portfwd.engine.model import ConnectionInfo, ForwardSnapshot, ForwardState, LogEntry
from portfwd.humanize import human_bytes, human_duration
from portfwd.safetext import escape_controls
from portfwd.tui.format import (
    LEVEL_STYLE,
    STATUS_STYLE,
    context_text,
    human_rate,
    local_text,
    log_time,
    name_text,
    namespace_text,
    reason_text,
    reconnect_text,
    remote_text,
    status_cell,
    target_text,
    uptime_text,
)
from portfwd.tui.history import Change
from portfwd.tui.widgets.health_block import health_block
from portfwd.tui.widgets.pod_log import PodLogView
from portfwd.tui.widgets.traffic_plot import millis, plot_section

RECENT_LOG_LINES = 8


@dataclass(frozen=True)
class Detail:
    """Everything the pane shows about one forward, gathered by the dashboard."""

    snap: ForwardSnapshot
    now: float
    note: str = ""  # the restore note when the engine has no reason
    rates: tuple[float, float] = (0.0, 0.0)
    node: str = ""  # "" while unknown
    connections: Sequence[ConnectionInfo] = ()
    history: Sequence[Change] = ()
    log: Sequence[LogEntry] = field(default_factory=tuple)
    tz: tzinfo | None = None


def _reason(detail: Detail) -> str:
    return reason_text(detail.snap.reason or detail.note)


def summary(detail: Detail, *, with_reason: bool = True) -> Text:
    """The status line, and the reason under it (`with_reason`; the unfolded pane has a
    "Last error" section of its own)."""
    snap = detail.snap
    text = Text()
    text.append_text(status_cell(snap, detail.now))  # its colour is the status's only
    text.append(f"  {target_text(snap)}", style="bold")
    text.append(f" in {namespace_text(snap) or '?'} ({context_text(snap) or 'current context'})")
    if snap.pod:
        text.append(f" · pod {escape_controls(snap.pod)}")
    text.append(f" · {local_text(snap)} → {remote_text(snap)}")
    more = reconnect_text(snap)
    if more:
        text.append(f" · {more}")
    text.append(f" · name {name_text(snap)}")  # what `portfwd stop NAME` takes
    reason = _reason(detail) if with_reason else ""
    if reason:
        text.append("\n")
        text.append(reason, style="red" if snap.state is ForwardState.ERROR else "yellow")
    return text


def _heading(title: str) -> Text:
    return Text(title, style="bold underline")


def _facts(detail: Detail) -> Text:
    snap = detail.snap
    text = Text()
    text.append("pod ", style="dim")
    text.append(escape_controls(snap.pod) if snap.pod else "(none chosen yet)")
    text.append("  node ", style="dim")
    text.append(escape_controls(detail.node) if detail.node else "?")
    text.append("  up ", style="dim")
    text.append(uptime_text(snap, detail.now))
    text.append("  reconnects ", style="dim")
    text.append(str(snap.stats.reconnects))
    text.append("  auto-reconnect ", style="dim")
    text.append("on" if snap.spec.reconnect else "off")
    text.append("\nwire ", style="dim")
    wire = snap.tunnel or "(not chosen yet)"
    if snap.spec.protocol != "auto":
        wire += f" (--protocol {snap.spec.protocol})"
    text.append(wire)
    text.append("\ntraffic ", style="dim")
    rate_in, rate_out = detail.rates
    text.append(f"↓ {human_bytes(snap.stats.bytes_in)}")
    if rate_in >= 1:
        text.append(f" ({human_rate(rate_in)})")
    text.append(f"  ↑ {human_bytes(snap.stats.bytes_out)}")
    if rate_out >= 1:
        text.append(f" ({human_rate(rate_out)})")
    stats = snap.stats
    text.append(
        f"  ·  {stats.connections_open} open, {stats.connections_total} total, "
        f"{stats.errors} failed"
    )
    return text


def _connections(detail: Detail) -> RenderableType:
    if not detail.connections:
        return Text("  none", style="dim")
    table = Table(box=None, show_header=True, header_style="dim", padding=(0, 1), pad_edge=True)
    for label in ("from", "to pod", "age", "↓ in", "↑ out", "↓/s", "↑/s", "open", "1st byte"):
        table.add_column(label, no_wrap=True, overflow="ellipsis")
    for conn in detail.connections:
        table.add_row(
            Text(escape_controls(conn.peer)),
            Text(escape_controls(conn.pod)),
            Text(human_duration(detail.now - conn.opened_at)),
            Text(human_bytes(conn.bytes_in)),
            Text(human_bytes(conn.bytes_out)),
            Text(human_rate(conn.rate_in)),
            Text(human_rate(conn.rate_out)),
            Text(millis(conn.stream_open)),
            Text(millis(conn.first_byte)),
        )
    return table


def _history(detail: Detail) -> Text:
    if not detail.history:
        return Text("  no state change seen since this window opened", style="dim")
    text = Text()
    for n, change in enumerate(reversed(detail.history)):
        if n:
            text.append("\n")
        symbol, style = STATUS_STYLE[change.state]
        text.append(f"  {log_time(change.ts, detail.tz)[:8]}  ", style="grey62")
        text.append(f"{symbol} {change.state.value}", style=style)
        if change.previous_pod:
            text.append(
                f"  pod {escape_controls(change.previous_pod)} → {escape_controls(change.pod)}"
            )
        elif change.pod and change.state in (ForwardState.ACTIVE, ForwardState.DEGRADED):
            text.append(f"  on pod {escape_controls(change.pod)}")
        if change.reason and change.state is not ForwardState.ACTIVE:
            text.append(f"  {reason_text(change.reason)}", style="yellow")
    return text


def _log(detail: Detail) -> Text:
    entries = list(detail.log)[-RECENT_LOG_LINES:]
    if not entries:
        return Text("  no log lines yet", style="dim")
    text = Text()
    for n, entry in enumerate(entries):
        if n:
            text.append("\n")
        text.append(f"  {log_time(entry.ts, detail.tz)} ", style="grey62")
        text.append(f"{entry.level.name:<7} ", style=LEVEL_STYLE.get(entry.level, ""))
        text.append(entry.message)  # escaped when the engine made the entry
    return text


def full(detail: Detail) -> Group:
    # What is wrong first, then the record, the traffic plot last: the pane scrolls, and a
    # terminal of 40-50 rows shows down to the recent log.
    parts: list[RenderableType] = [summary(detail, with_reason=False), _facts(detail)]
    if _reason(detail):
        parts += [_heading("Last error"), Text(_reason(detail))]
    parts += [_heading("Health per layer"), health_block(detail.snap, detail.now, detail.tz)]
    parts += [
        _heading(f"Connections open now ({len(detail.connections)})"),
        _connections(detail),
        _heading("Reconnect history (state changes seen by this window, newest first)"),
        _history(detail),
        _heading("Recent log (l: all of it)"),
        _log(detail),
    ]
    parts += plot_section(detail.snap.stats, detail.now)  # widgets/traffic_plot.py
    return Group(*parts)


class DetailPane(VerticalScroll, can_focus=False):
    """Docked under the table; `expanded` switches between the summary and everything."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.expanded = False
        self.pod_log_on = False  # `t`: the summary and the pod's log, not the whole detail
        self.detail: Detail | None = None

    def compose(self) -> ComposeResult:
        yield Static("", id="detail-body")
        yield PodLogView(id="pod-log")

    def on_mount(self) -> None:
        self.pod_log.display = False

    @property
    def pod_log(self) -> PodLogView:
        return self.query_one(PodLogView)

    def show(self, detail: Detail | None) -> None:
        self.detail = detail
        self.display = detail is not None
        tailing = self.pod_log_on and self.expanded and detail is not None
        self.pod_log.follow(detail.snap.id if tailing and detail is not None else None)
        self.pod_log.display = tailing
        if detail is None:
            return
        body = self.query_one("#detail-body", Static)
        body.update(full(detail) if self.expanded and not tailing else summary(detail))

    def toggle(self) -> None:
        self.expanded = not self.expanded
        self.pod_log_on = False  # `i` shows the details; `t` the pod log
        self.set_class(self.expanded, "-expanded")
        self.show(self.detail)

    def toggle_pod_log(self) -> None:
        """The pod log tail on (the pane unfolds) or off (back to the details)."""
        if not self.expanded:
            self.expanded = True
            self.set_class(True, "-expanded")
            self.pod_log_on = True
        else:
            self.pod_log_on = not self.pod_log_on
        self.show(self.detail)
