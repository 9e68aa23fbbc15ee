"""The HTTP request log (`h`): one forward's requests or every forward's, the latest first,
filtered as you type.

The lines are the forwards' own log lines of kind HTTP (`LogKind.HTTP`, what `--http-log`,
`H` or a profile's `http_log: true` turn on), read from the engine's log and then from a
subscription of this view's own, so it needs nothing from the app's event plumbing. What is
kept is bounded (:data:`MAX_KEPT`), and a burst of requests repaints once per
:data:`REPAINT_DELAY`, not once per line. Messages were escaped when the engine made them.
"""

from __future__ import annotations

from collections import deque

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.timer import Timer
from textual.widgets import Footer, Header, Input, Static

from portfwd.engine.api import EventStream
from portfwd.engine.events import ForwardRemoved, LogLine
from portfwd.engine.model import LogEntry, LogKind
from portfwd.tui.format import forward_label, log_time, reason_text
from portfwd.tui.screens.base import PortfwdScreen

MAX_KEPT = 5000  # lines this view keeps (every forward together)
MAX_SHOWN = 1000  # lines drawn, the latest matching ones
REPAINT_DELAY = 0.2


class HttpLogScreen(PortfwdScreen[None]):
    DEFAULT_CSS = """
    HttpLogScreen #http-title { height: auto; padding: 0 1; background: $boost; }
    HttpLogScreen #http-filter { margin: 0 0; }
    HttpLogScreen #http-lines { height: 1fr; padding: 0 1; }
    """
    BINDINGS = [
        Binding("escape", "back", "Back (clears the filter first)"),
        Binding("ctrl+o", "toggle_scope", "This forward / all"),
        Binding("up", "scroll(-1)", "Up", show=False),
        Binding("down", "scroll(1)", "Down", show=False),
        Binding("pageup", "scroll(-10)", "Page up", show=False),
        Binding("pagedown", "scroll(10)", "Page down", show=False),
    ]

    def __init__(self, forward_id: str | None) -> None:
        super().__init__(classes="http-log-screen")
        self.forward_id = forward_id  # None: every forward
        self.all_forwards = forward_id is None
        self.entries: deque[tuple[str, LogEntry]] = deque(maxlen=MAX_KEPT)
        self.filter_text = ""
        self.shown = 0  # lines drawn now
        self._labels: dict[str, str] = {}
        self._repaint: Timer | None = None

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static(id="http-title")
        yield Input(placeholder="filter: words to match (method, path, status)", id="http-filter")
        with VerticalScroll(id="http-lines", can_focus=False):
            yield Static(id="http-body")
        yield Footer()

    def on_mount(self) -> None:
        engine = self.engine
        subscription = engine.subscribe()  # before reading the log: nothing falls between
        history: list[tuple[str, LogEntry]] = []
        for snap in engine.snapshot():
            self._labels[snap.id] = forward_label(snap)
            history.extend((snap.id, e) for e in engine.logs(snap.id) if e.kind is LogKind.HTTP)
        history.sort(key=lambda item: item[1].ts)
        self.entries.extend(history)
        self._follow(subscription)
        self.query_one("#http-filter", Input).focus()
        self.repaint()

    @work(group="http-log-events", exclusive=True)
    async def _follow(self, stream: EventStream) -> None:
        try:
            async for event in stream:
                if isinstance(event, LogLine):
                    if event.forward_id is not None and event.entry.kind is LogKind.HTTP:
                        self.entries.append((event.forward_id, event.entry))
                        self._soon()
                elif isinstance(event, ForwardRemoved):
                    self._soon()
        finally:
            stream.close()

    def _soon(self) -> None:
        if self._repaint is None:
            self._repaint = self.set_timer(REPAINT_DELAY, self.repaint)

    # -- drawing ------------------------------------------------------------------------------

    def _label(self, forward_id: str) -> str:
        try:
            snap = self.engine.get(forward_id)
        except KeyError:
            return self._labels.get(forward_id, reason_text(forward_id)) + " (removed)"
        label = self._labels[forward_id] = forward_label(snap)
        return label

    def title_text(self) -> Text:
        title = Text()
        if self.all_forwards or self.forward_id is None:
            title.append("HTTP requests of every forward", style="bold")
        else:
            title.append(f"HTTP requests of {self._label(self.forward_id)}", style="bold")
            try:
                on = self.engine.get(self.forward_id).spec.http_log
            except KeyError:
                on = True
            if not on:
                title.append("  ·  the HTTP log is off (H on the dashboard turns it on)", "yellow")
        title.append(f"  ·  {self.shown} shown, latest first", style="dim")
        if self.forward_id is not None:
            other = "this forward" if self.all_forwards else "every forward"
            title.append(f"  ·  ctrl+o: {other}", style="dim")
        return title

    def matching(self) -> list[tuple[str, LogEntry]]:
        """The lines to draw, latest first."""
        words = self.filter_text.lower().split()
        found: list[tuple[str, LogEntry]] = []
        for fid, entry in reversed(self.entries):
            if not self.all_forwards and fid != self.forward_id:
                continue
            if words:
                hay = entry.message.lower()
                if self.all_forwards:
                    hay += " " + self._labels.get(fid, fid).lower()
                if not all(w in hay for w in words):
                    continue
            found.append((fid, entry))
            if len(found) >= MAX_SHOWN:
                break
        return found

    def repaint(self) -> None:
        self._repaint = None
        rows = self.matching()
        self.shown = len(rows)
        body = Text()
        tz = self.papp.tz
        for n, (fid, entry) in enumerate(rows):
            if n:
                body.append("\n")
            body.append(log_time(entry.ts, tz)[:8] + "  ", style="grey62")
            if self.all_forwards:
                body.append(self._label(fid) + "  ", style="bold")
            body.append(entry.message)
        if not rows:
            if self.filter_text:
                body.append(f"No request matches “{reason_text(self.filter_text)}”.", style="dim")
            else:
                body.append(
                    "No HTTP requests yet. H on the dashboard turns the HTTP log on for the "
                    "selected forward (profiles: http_log: true; CLI: --http-log).",
                    style="dim",
                )
        self.query_one("#http-body", Static).update(body)
        self.query_one("#http-title", Static).update(self.title_text())

    # -- keys ---------------------------------------------------------------------------------

    @on(Input.Changed, "#http-filter")
    def _filter_changed(self, event: Input.Changed) -> None:
        self.filter_text = event.value
        self.repaint()

    def action_toggle_scope(self) -> None:
        if self.forward_id is not None:
            self.all_forwards = not self.all_forwards
            self.repaint()

    def action_scroll(self, lines: int) -> None:
        self.query_one("#http-lines", VerticalScroll).scroll_relative(y=lines, animate=False)

    def action_back(self) -> None:
        box = self.query_one("#http-filter", Input)
        if box.value:
            box.value = ""
            return
        self.dismiss(None)
