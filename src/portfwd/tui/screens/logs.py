"""Log view: one forward's log (resolution decisions, error-channel text ...) or the app's."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import Footer, Header, RichLog, Static

from portfwd.engine.model import ForwardState, LogEntry
from portfwd.tui.format import LEVEL_STYLE, forward_label, log_time, reason_text, reconnect_text
from portfwd.tui.screens.base import PortfwdScreen

MAX_LINES = 5000  # scrollback kept on screen


class LogScreen(PortfwdScreen[None]):
    BINDINGS = [
        Binding("escape,q", "close", "Back"),
        Binding("f", "follow", "Follow on/off"),
        Binding("c", "clear", "Clear"),
    ]

    def __init__(self, forward_id: str | None) -> None:
        super().__init__(classes="log-screen")
        self.forward_id = forward_id
        self.lines_shown = 0
        self.following = True  # new lines scroll into view
        self.unseen = 0  # lines that arrived while paused
        self._history_loaded = False

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static(self._title(), id="log-title")
        yield RichLog(max_lines=MAX_LINES, wrap=True, highlight=False, markup=False, id="log")
        yield Footer()

    def _title(self) -> Text:
        title = Text(self._title_text())
        title.append("  ·  ")
        if self.following:
            title.append("● following (f pauses)", style="green")
        else:
            title.append("⏸ paused (f follows)", style="yellow")
            if self.unseen:
                n = self.unseen
                title.append(f"  ·  {n} new line{'s' if n != 1 else ''} below", style="yellow")
        # (esc: in the footer; the room is the reason's, said in full below)
        reason = self._reason()
        if reason:
            title.append("\n")
            title.append(reason, style="not bold yellow")
        return title

    def _reason(self) -> str:
        """Why the forward is not active (in full), under the title."""
        if self.forward_id is None:
            return ""
        try:
            snap = self.engine.get(self.forward_id)
        except KeyError:
            return ""
        return reason_text(snap.reason) if snap.state is not ForwardState.ACTIVE else ""

    def _title_text(self) -> str:
        if self.forward_id is None:
            return "App log (every forward)"
        try:
            snap = self.engine.get(self.forward_id)
        except KeyError:
            return f"Log of forward {reason_text(self.forward_id)} (removed)"
        state = snap.state.value
        if snap.state is ForwardState.RECONNECTING and snap.attempt > 0:
            state += f" #{snap.attempt}"
        title = f"Log of {forward_label(snap)} [{state}]"
        more = reconnect_text(snap)
        if more:
            title += f"  ·  {more}"
        return title

    def on_mount(self) -> None:
        # After the first layout, so history wraps at the real width, not RichLog's minimum.
        self.call_after_refresh(self._load_history)

    def _load_history(self) -> None:
        log = self.query_one(RichLog)
        for forward_id, entry in self._history():
            self._write(log, forward_id, entry)
        self._history_loaded = True
        log.focus()

    def _history(self) -> list[tuple[str | None, LogEntry]]:
        engine = self.engine
        if self.forward_id is not None:
            return [(self.forward_id, e) for e in engine.logs(self.forward_id)]
        # The app-wide view: app lines and every forward's lines, in time order.
        merged: list[tuple[str | None, LogEntry]] = [(None, e) for e in engine.logs(None)]
        for snap in engine.snapshot():
            merged.extend((snap.id, e) for e in engine.logs(snap.id))
        merged.sort(key=lambda item: item[1].ts)
        return merged[-MAX_LINES:]

    def _prefix(self, forward_id: str | None) -> str:
        if self.forward_id is not None or forward_id is None:
            return ""
        try:
            return forward_label(self.engine.get(forward_id)) + "  "
        except KeyError:
            return f"{reason_text(forward_id)}  "

    def _write(self, log: RichLog, forward_id: str | None, entry: LogEntry) -> None:
        line = Text()
        line.append(log_time(entry.ts, self.papp.tz) + " ", style="grey62")
        line.append(f"{entry.level.name:<7} ", style=LEVEL_STYLE.get(entry.level, ""))
        line.append(self._prefix(forward_id), style="bold")
        line.append(entry.message)  # escaped when the engine made the entry (LogEntry)
        width = log.scrollable_content_region.width
        log.write(line, width=width if width > 20 else None)
        self.lines_shown += 1

    def add_entry(self, forward_id: str | None, entry: LogEntry) -> None:
        """Called by the app for every LogLine event; keeps only the ones this view shows."""
        if self.forward_id is not None and forward_id != self.forward_id:
            return
        if not self._history_loaded:
            return  # the history, read once the view is laid out, already holds it
        self._write(self.query_one(RichLog), forward_id, entry)
        if not self.following:
            self.unseen += 1
            self.refresh_title()

    def refresh_title(self) -> None:
        self.query_one("#log-title", Static).update(self._title())

    def action_close(self) -> None:
        self.dismiss(None)

    def action_follow(self) -> None:
        """Follow (new lines scroll into view) on/off; the title always says which."""
        log = self.query_one(RichLog)
        self.following = log.auto_scroll = not self.following
        if self.following:
            self.unseen = 0
            log.scroll_end(animate=False)
        self.refresh_title()

    def action_clear(self) -> None:
        self.query_one(RichLog).clear()
