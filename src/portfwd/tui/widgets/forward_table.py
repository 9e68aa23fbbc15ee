"""The dashboard's table: one row per forward, updated cell by cell as events arrive.

Rows are keyed by forward id. An event touches only the cells whose text changed
(`update_cell`); the table is rebuilt only when the user sorts or filters, or after the event
stream lagged. The 1 s tick refreshes uptime, byte rates and the retry countdown of running
forwards only.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from rich.text import Text
from textual.binding import Binding
from textual.widgets import DataTable
from textual.widgets.data_table import CellDoesNotExist, ColumnKey, RowDoesNotExist

from portfwd.engine.model import ForwardSnapshot, ForwardState, ForwardStats
from portfwd.tui.format import (
    context_text,
    human_bytes,
    human_rate,
    local_text,
    namespace_text,
    reason_text,
    remote_text,
    status_cell,
    target_pod_text,
    target_text,
    uptime_text,
)


@dataclass(frozen=True)
class Column:
    key: str
    label: str
    sort_key: Callable[[ForwardSnapshot, float], Any]


_STATE_ORDER = {
    ForwardState.ERROR: 0,
    ForwardState.RECONNECTING: 1,
    ForwardState.STARTING: 2,
    ForwardState.ACTIVE: 3,
    ForwardState.STOPPED: 4,
}

COLUMNS: tuple[Column, ...] = (
    Column("status", "Status", lambda s, now: _STATE_ORDER[s.state]),
    Column("context", "Context", lambda s, now: context_text(s)),
    Column("namespace", "Namespace", lambda s, now: namespace_text(s)),
    Column("target", "Target", lambda s, now: s.spec.target),
    Column("pod", "Pod", lambda s, now: s.pod),
    Column("local", "Local", lambda s, now: s.local_port),
    Column("remote", "Remote", lambda s, now: s.remote_port or 0),
    Column(
        "uptime",
        "Uptime",
        lambda s, now: (
            now - s.started_at if s.started_at and s.state is ForwardState.ACTIVE else -1.0
        ),
    ),
    Column("conns", "Conns", lambda s, now: s.stats.connections_open),
    Column("bytes_in", "In", lambda s, now: s.stats.bytes_in),
    Column("bytes_out", "Out", lambda s, now: s.stats.bytes_out),
    Column("error", "Last error", lambda s, now: s.reason),
)
COLUMN_KEYS = tuple(c.key for c in COLUMNS)

_RUNNING = (ForwardState.ACTIVE, ForwardState.RECONNECTING)


def _same(old: Text | None, new: Text) -> bool:
    """Text's own == ignores the base style: a reason that stays while the row leaves the
    error state must still lose its red."""
    return old is not None and (old.plain, old.style, old.spans) == (
        new.plain,
        new.style,
        new.spans,
    )


def matches(snap: ForwardSnapshot, query: str) -> bool:
    """Every whitespace-separated word of `query` appears somewhere in the row."""
    if not query.strip():
        return True
    hay = " ".join(
        (
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


class ForwardTable(DataTable[Any]):
    """Rows of forwards; the screen calls `upsert`/`remove`/`update_stats`/`tick`."""

    BINDINGS = [
        Binding("s", "cycle_sort", "Sort", show=False),
        Binding("S", "reverse_sort", "Reverse sort", show=False),
        # k9s/less habits: rows, not columns, are what home/end and g/G jump through.
        Binding("home,g", "scroll_top", "First row", show=False),
        Binding("end,G", "scroll_bottom", "Last row", show=False),
        Binding("j", "cursor_down", "Down", show=False),
        Binding("k", "cursor_up", "Up", show=False),
    ]

    def __init__(
        self,
        *,
        clock: Callable[[], float] = time.time,
        id: str | None = None,
    ) -> None:
        super().__init__(id=id, cursor_type="row", zebra_stripes=True)
        self.clock = clock
        self.snapshots: dict[str, ForwardSnapshot] = {}
        self.notes: dict[str, str] = {}  # shown in "Last error" when the engine has no reason
        self.filter_text = ""
        self.sort_column: str | None = None
        self.sort_reverse = False
        self._rates: dict[str, tuple[float, int, int, float, float]] = {}
        self._cells: dict[str, dict[str, Text]] = {}

    def on_mount(self) -> None:
        for col in COLUMNS:
            self.add_column(col.label, key=col.key)

    # -- queries ----------------------------------------------------------------------------

    @property
    def selected_id(self) -> str | None:
        if self.row_count == 0:
            return None
        try:
            row_key, _ = self.coordinate_to_cell_key(self.cursor_coordinate)
        except CellDoesNotExist:
            return None
        return str(row_key.value) if row_key.value is not None else None

    def visible_ids(self) -> list[str]:
        return [str(r.key.value) for r in self.ordered_rows]

    # -- rendering of one row -----------------------------------------------------------------

    def _row_cells(self, snap: ForwardSnapshot, now: float) -> dict[str, Text]:
        rate_in, rate_out = self._current_rates(snap.id)
        reason = reason_text(snap.reason or self.notes.get(snap.id, ""))
        bytes_in = human_bytes(snap.stats.bytes_in)
        bytes_out = human_bytes(snap.stats.bytes_out)
        if rate_in >= 1:
            bytes_in += f" ({human_rate(rate_in)})"
        if rate_out >= 1:
            bytes_out += f" ({human_rate(rate_out)})"
        # Text, not str: DataTable reads a str cell as markup, and names, addresses such as
        # [fe80::1] and error text are shown verbatim.
        return {
            "status": status_cell(snap, now),
            "context": Text(context_text(snap)),
            "namespace": Text(namespace_text(snap)),
            "target": Text(target_text(snap)),
            "pod": Text(target_pod_text(snap)),
            "local": Text(local_text(snap)),
            "remote": Text(remote_text(snap)),
            "uptime": Text(uptime_text(snap, now)),
            "conns": Text(str(snap.stats.connections_open)),
            "bytes_in": Text(bytes_in),
            "bytes_out": Text(bytes_out),
            "error": Text(reason[:120], style="red" if snap.state is ForwardState.ERROR else ""),
        }

    def _current_rates(self, fid: str) -> tuple[float, float]:
        entry = self._rates.get(fid)
        return (entry[3], entry[4]) if entry else (0.0, 0.0)

    # -- mutation ---------------------------------------------------------------------------

    def _ordered(self) -> list[ForwardSnapshot]:
        snaps = [s for s in self.snapshots.values() if matches(s, self.filter_text)]
        if self.sort_column is not None:
            col = next(c for c in COLUMNS if c.key == self.sort_column)
            now = self.clock()
            snaps.sort(key=lambda s: col.sort_key(s, now), reverse=self.sort_reverse)
        return snaps

    def rebuild(self) -> None:
        """Re-create every row (sort, filter, resync): keeps the selected forward selected."""
        selected = self.selected_id
        self.clear()
        self._cells.clear()
        now = self.clock()
        for snap in self._ordered():
            cells = self._row_cells(snap, now)
            self._cells[snap.id] = cells
            self.add_row(*(cells[k] for k in COLUMN_KEYS), key=snap.id)
        self._restore_cursor(selected)
        self._update_labels()

    def _restore_cursor(self, fid: str | None) -> None:
        if fid is not None and fid in self._cells:
            self.move_cursor(row=self.get_row_index(fid), animate=False)

    def set_all(self, snapshots: list[ForwardSnapshot]) -> None:
        self.snapshots = {s.id: s for s in snapshots}
        for fid in list(self._rates):
            if fid not in self.snapshots:
                del self._rates[fid]
        self.rebuild()

    def upsert(self, snap: ForwardSnapshot) -> None:
        previous = self.snapshots.get(snap.id)
        self.snapshots[snap.id] = snap
        if snap.state is ForwardState.ACTIVE and (
            previous is not None and previous.state is not ForwardState.ACTIVE
        ):
            self.notes.pop(snap.id, None)  # the restore note no longer applies
        visible = matches(snap, self.filter_text)
        present = snap.id in self._cells
        if present and not visible:
            self._remove_row(snap.id)
        elif not present and visible:
            if self.sort_column is not None:
                self.rebuild()
            else:
                cells = self._row_cells(snap, self.clock())
                self._cells[snap.id] = cells
                self.add_row(*(cells[k] for k in COLUMN_KEYS), key=snap.id)
        elif present:
            self._update_row(snap)

    def _update_row(self, snap: ForwardSnapshot) -> None:
        old = self._cells[snap.id]
        new = self._row_cells(snap, self.clock())
        for key in COLUMN_KEYS:
            if not _same(old.get(key), new[key]):
                # Re-measuring a column costs a full layout pass: only when the text grew
                # past it (uptime and counters change every second on every running row).
                column = self.columns.get(ColumnKey(key))
                text = new[key]
                grow = column is None or text.cell_len > column.content_width
                try:
                    self.update_cell(snap.id, key, text, update_width=grow)
                except (CellDoesNotExist, RowDoesNotExist):
                    return
        self._cells[snap.id] = new

    def _remove_row(self, fid: str) -> None:
        self._cells.pop(fid, None)
        with contextlib.suppress(RowDoesNotExist):
            self.remove_row(fid)

    def remove_forward(self, fid: str) -> None:
        self.snapshots.pop(fid, None)
        self.notes.pop(fid, None)
        self._rates.pop(fid, None)
        if fid in self._cells:
            self._remove_row(fid)

    def update_stats(self, fid: str, stats: ForwardStats) -> None:
        snap = self.snapshots.get(fid)
        if snap is None:
            return
        snap = replace(snap, stats=stats)
        self.snapshots[fid] = snap
        if fid in self._cells:
            self._update_row(snap)

    def tick(self) -> None:
        """Once a second while visible: uptime, byte rates and retry countdowns."""
        now = self.clock()
        for fid, snap in self.snapshots.items():
            prev = self._rates.get(fid)
            bin_, bout = snap.stats.bytes_in, snap.stats.bytes_out
            if prev is not None and now > prev[0]:
                dt = now - prev[0]
                self._rates[fid] = (now, bin_, bout, (bin_ - prev[1]) / dt, (bout - prev[2]) / dt)
            else:
                self._rates[fid] = (now, bin_, bout, 0.0, 0.0)
            if fid in self._cells and (
                snap.state in _RUNNING
                or snap.next_retry_at is not None
                or prev is None
                or prev[3]
                or prev[4]
            ):
                self._update_row(snap)

    # -- sorting ----------------------------------------------------------------------------

    def sort_by(self, column: str | None, *, reverse: bool | None = None) -> None:
        if column is not None and column not in COLUMN_KEYS:
            raise ValueError(f"unknown column {column}")
        self.sort_column = column
        if reverse is not None:
            self.sort_reverse = reverse
        self.rebuild()

    def action_cycle_sort(self) -> None:
        keys: list[str | None] = [None, *COLUMN_KEYS]
        nxt = keys[(keys.index(self.sort_column) + 1) % len(keys)]
        self.sort_by(nxt, reverse=False)
        label = next((c.label for c in COLUMNS if c.key == nxt), "insertion order")
        self.notify(f"sorted by {label}", timeout=2)

    def action_reverse_sort(self) -> None:
        self.sort_by(self.sort_column, reverse=not self.sort_reverse)

    def on_data_table_header_selected(self, event: DataTable.HeaderSelected) -> None:
        key = str(event.column_key.value)
        if key == self.sort_column:
            self.sort_by(key, reverse=not self.sort_reverse)
        else:
            self.sort_by(key, reverse=False)

    def _update_labels(self) -> None:
        for col in COLUMNS:
            arrow = ""
            if col.key == self.sort_column:
                arrow = " ▼" if self.sort_reverse else " ▲"
            column = self.columns.get(ColumnKey(col.key))
            if column is not None:
                column.label = Text(col.label + arrow)
        self.refresh()
