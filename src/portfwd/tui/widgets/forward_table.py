"""The dashboard's table: one row per forward, updated cell by cell as events arrive.

Rows are keyed by forward id. An event touches only the cells whose text changed. Which
columns show, and how wide, follows what the rows show now (`FittedTable`): the status,
target, local and remote ports, connections and the last error stay longest; a cell that
does not fit is cut with "…" and the detail pane shows it whole. The rows are re-created when
set of columns changes, when the user sorts or filters, or after the event stream lagged. The
1 s tick refreshes uptime, byte rates and the retry countdown of the rows on screen only; a
row off screen catches up when it is scrolled to (issue 22: 500 idle forwards cost nothing).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace

from rich.text import Text
from textual import events
from textual.binding import Binding
from textual.message import Message
from textual.widgets import DataTable
from textual.widgets.data_table import RowKey

from portfwd.engine.model import ForwardSnapshot, ForwardState, ForwardStats
from portfwd.humanize import human_bytes
from portfwd.tui.columns import BY_KEY, COLUMN_KEYS, COLUMNS
from portfwd.tui.format import (
    context_tag,
    context_text,
    local_compact,
    local_text,
    name_text,
    namespace_text,
    reason_text,
    remote_compact,
    remote_short,
    remote_text,
    status_cell,
    status_compact,
    target_pod_text,
    target_text,
    uptime_cell,
)
from portfwd.tui.grouping import GroupIndex
from portfwd.tui.widgets.fitted_table import FittedTable
from portfwd.tui.widgets.traffic_plot import SPARK_SECONDS, rate_cell, rates_now

__all__ = ["COLUMNS", "COLUMN_KEYS", "ForwardTable", "matches"]

_RUNNING = (ForwardState.ACTIVE, ForwardState.RECONNECTING, ForwardState.DEGRADED)

# When the columns do not fit whole (issue 18: at 80 columns the target was cut to
# `svc/cra…` while Remote spent 20 cells on `443 → 8443 (https)`): first the remote port's
# decoration goes, then the local side and the status take their short forms, then the
# remote port shows as asked.
STEPS = (
    {"remote": "remote_compact"},
    {"remote": "remote_compact", "local": "local_compact", "status": "status_compact"},
    {"remote": "remote_short", "local": "local_compact", "status": "status_compact"},
)


def matches(snap: ForwardSnapshot, query: str, group: str = "") -> bool:
    """Every whitespace-separated word of `query` appears somewhere in the row."""
    if not query.strip():
        return True
    hay = " ".join(
        (
            group,
            name_text(snap),
            snap.state.value,
            context_text(snap),
            namespace_text(snap),
            snap.spec.target,
            snap.pod,
            local_text(snap),
            remote_text(snap),
            snap.reason,
            "" if snap.spec.reconnect else "no-reconnect",
        )
    ).lower()
    return all(word in hay for word in query.lower().split())


def _moving(stats: ForwardStats, now: float) -> bool:
    """Bytes moved within the sparkline's seconds: its cell still changes with the clock."""
    at = stats.sampled_at
    return at is not None and now - at <= SPARK_SECONDS + 1


class ForwardTable(FittedTable):
    """Rows of forwards; the screen calls `upsert`/`remove`/`update_stats`/`tick`."""

    BINDINGS = [
        Binding("s", "cycle_sort", "Sort", show=False),
        Binding("S", "reverse_sort", "Reverse sort", show=False),
        Binding("enter", "open_logs", "Logs", show=False),
    ]

    class LogsRequested(Message):
        """Enter, or a double click, on a row: its log, please."""

        def __init__(self, table: ForwardTable, forward_id: str) -> None:
            super().__init__()
            self.table = table
            self.forward_id = forward_id

        @property
        def control(self) -> ForwardTable:
            return self.table

    def __init__(
        self,
        *,
        clock: Callable[[], float] = time.time,
        id: str | None = None,
    ) -> None:
        super().__init__(COLUMNS, steps=STEPS, id=id)
        self.clock = clock
        self.snapshots: dict[str, ForwardSnapshot] = {}
        self.notes: dict[str, str] = {}  # shown in "Last error" when the engine has no reason
        self.filter_text = ""
        self.default_context = ""  # the header's: a context column of only this one is hidden
        self.groups = GroupIndex()  # the profiles file's forwards: the Group column
        self._stale: set[str] = set()  # rows off screen whose clock cells a tick skipped
        self.layout_columns = frozenset({"context"})
        self.tick_rows = 0  # rows a tick recomputed (tests: an off-screen row costs nothing)

    @property
    def selected_id(self) -> str | None:
        return self.selected_key

    def hidden_columns(self) -> list[str]:
        contexts = {cells["context"].plain for cells in self._full.values()}
        return ["context"] if contexts <= {context_tag(self.default_context), ""} else []

    # -- rendering of one row -----------------------------------------------------------------

    def _clock_cells(self, snap: ForwardSnapshot, now: float) -> dict[str, Text]:
        """The cells that move with time alone: a tick recomputes only these."""
        return {
            "status": status_cell(snap, now),
            "status_compact": status_compact(snap, now),
            "uptime": Text(uptime_cell(snap, now)),
            "rate": rate_cell(snap.stats, now),
        }

    def _row_cells(self, snap: ForwardSnapshot, now: float) -> dict[str, Text]:
        reason = reason_text(snap.reason or self.notes.get(snap.id, ""))
        # Text, not str: DataTable reads a str cell as markup, and names, addresses such as
        # [fe80::1] and error text are shown verbatim.
        return {
            **self._clock_cells(snap, now),
            "name": Text(name_text(snap)),
            "group": Text(self.groups.label(snap.spec)),
            "context": Text(context_tag(context_text(snap))),
            "namespace": Text(namespace_text(snap)),
            "target": Text(target_text(snap)),
            "pod": Text(target_pod_text(snap)),
            "local": Text(local_text(snap)),
            "local_compact": Text(local_compact(snap)),
            "remote": Text(remote_text(snap)),
            "remote_compact": Text(remote_compact(snap)),
            "remote_short": Text(remote_short(snap)),
            "conns": Text(str(snap.stats.connections_open)),
            "bytes_in": Text(human_bytes(snap.stats.bytes_in)),
            "bytes_out": Text(human_bytes(snap.stats.bytes_out)),
            "error": Text(reason, style="red" if snap.state is ForwardState.ERROR else ""),
        }

    # -- mutation ---------------------------------------------------------------------------

    def _ordered(self) -> list[ForwardSnapshot]:
        snaps = [
            s
            for s in self.snapshots.values()
            if matches(s, self.filter_text, self.groups.label(s.spec))
        ]
        if self.sort_column == "group":  # by the label, which the table knows, not the row
            snaps.sort(key=lambda s: self.groups.label(s.spec), reverse=self.sort_reverse)
        elif self.sort_column is not None:
            col = BY_KEY[self.sort_column]
            now = self.clock()
            snaps.sort(key=lambda s: col.sort_key(s, now), reverse=self.sort_reverse)
        return snaps

    def set_groups(self, groups: GroupIndex) -> None:
        if groups != self.groups:
            self.groups = groups
            self.rebuild()

    def rebuild(self) -> None:
        """Re-create every row (sort, filter, resync): keeps the selected forward selected."""
        now = self.clock()
        self._stale.clear()
        self.set_rows((snap.id, self._row_cells(snap, now)) for snap in self._ordered())

    def set_all(self, snapshots: list[ForwardSnapshot]) -> None:
        self.snapshots = {s.id: s for s in snapshots}
        self.rebuild()

    def upsert(self, snap: ForwardSnapshot) -> None:
        previous = self.snapshots.get(snap.id)
        self.snapshots[snap.id] = snap
        if snap.state is ForwardState.ACTIVE and (
            previous is not None and previous.state is not ForwardState.ACTIVE
        ):
            self.notes.pop(snap.id, None)  # the restore note no longer applies
        visible = matches(snap, self.filter_text)
        present = self.has_row(snap.id)
        if present and not visible:
            self.drop_row(snap.id)
        elif not present and visible and self.sort_column is not None:
            self.rebuild()
        elif visible:
            self._update_row(snap)

    def _update_row(self, snap: ForwardSnapshot) -> None:
        self._stale.discard(snap.id)
        self.put_row(snap.id, self._row_cells(snap, self.clock()))

    def remove_forward(self, fid: str) -> None:
        self.snapshots.pop(fid, None)
        self.notes.pop(fid, None)
        if self.has_row(fid):
            self.drop_row(fid)

    def update_stats(self, fid: str, stats: ForwardStats) -> None:
        snap = self.snapshots.get(fid)
        if snap is None:
            return
        snap = replace(snap, stats=stats)
        self.snapshots[fid] = snap
        if self.has_row(fid):
            self._update_row(snap)

    def rates(self, fid: str) -> tuple[float, float]:
        """Bytes per second in and out in the last whole second (the engine's samples)."""
        snap = self.snapshots.get(fid)
        if snap is None:
            return (0.0, 0.0)
        rate_in, rate_out = rates_now(snap.stats, self.clock())
        return (float(rate_in), float(rate_out))

    def tick(self) -> None:
        """Once a second while visible: uptime, byte rates and retry countdowns of the rows
        on screen (the others when scrolled to)."""
        now = self.clock()
        shown = self.visible_rows()
        locations = self._row_locations
        for fid, snap in self.snapshots.items():
            if not self.has_row(fid) or not (
                snap.state in _RUNNING or snap.next_retry_at is not None or _moving(snap.stats, now)
            ):
                continue
            index = locations.get(RowKey(fid))
            if index is None or index not in shown:
                self._stale.add(fid)
                continue
            self.tick_rows += 1
            self.patch_row(fid, self._clock_cells(snap, now))

    def _catch_up(self) -> None:
        """Rows a tick skipped off screen, now on it: their clock cells as of now."""
        if not self._stale:
            return
        now = self.clock()
        locations = self._row_locations
        for index in self.visible_rows():
            key = locations.get_key(index)
            fid = key.value if key is not None else None
            if fid in self._stale:
                self._stale.discard(fid)
                snap = self.snapshots.get(fid)
                if snap is not None:
                    self.tick_rows += 1
                    self.patch_row(fid, self._clock_cells(snap, now))

    def watch_scroll_y(self, old_value: float, new_value: float) -> None:
        super().watch_scroll_y(old_value, new_value)
        if self._stale and round(old_value) != round(new_value):
            self.call_later(self._catch_up)

    def on_resize(self, event: events.Resize) -> None:
        # FittedTable's handler runs too (Textual calls each class's): the relayout.
        if self._stale:
            self.call_later(self._catch_up)

    # -- sorting ----------------------------------------------------------------------------

    def sort_by(self, column: str | None, *, reverse: bool | None = None) -> None:
        if column is not None and column not in COLUMN_KEYS:
            raise ValueError(f"unknown column {column}")
        self.sort_column = column
        if reverse is not None:
            self.sort_reverse = reverse
        self.rebuild()

    def action_cycle_sort(self) -> None:
        """The next column on screen (then insertion order again)."""
        keys: list[str | None] = [None, *self.shown_keys]
        current = self.sort_column if self.sort_column in keys else None
        nxt = keys[(keys.index(current) + 1) % len(keys)]
        self.sort_by(nxt, reverse=False)
        label = BY_KEY[nxt].label if nxt else "insertion order"
        self.notify(f"sorted by {label}", timeout=2)

    def action_reverse_sort(self) -> None:
        self.sort_by(self.sort_column, reverse=not self.sort_reverse)

    def on_data_table_header_selected(self, event: DataTable.HeaderSelected) -> None:
        key = str(event.column_key.value)
        if key == self.sort_column:
            self.sort_by(key, reverse=not self.sort_reverse)
        else:
            self.sort_by(key, reverse=False)

    # -- logs: enter or a double click ----------------------------------------------------------

    def action_open_logs(self) -> None:
        fid = self.selected_id
        if fid is not None:
            self.post_message(self.LogsRequested(self, fid))

    def on_click(self, event: events.Click) -> None:
        # DataTable's own handler (which runs too) moves the cursor: a click selects a row,
        # a click on a header sorts (above). A double click opens the row's log.
        row = event.style.meta.get("row", -1)
        key = self.key_at(row) if isinstance(row, int) else None
        if event.chain == 2 and key is not None:
            self.post_message(self.LogsRequested(self, key))
