"""The dashboard's table: one row per forward, updated cell by cell as events arrive.

Rows are keyed by forward id. An event touches only the cells whose text changed. Which
columns show, and how wide, follows what the rows show now (`FittedTable`): the status,
target, local and remote ports, connections and the last error stay longest; a cell that
does not fit is cut with "…" and the detail pane shows it whole. The rows are re-created when
that layout changes, when the user sorts or filters, or after the event stream lagged. The
1 s tick refreshes uptime, byte rates and the retry countdown.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace

from rich.text import Text
from textual import events
from textual.binding import Binding
from textual.message import Message
from textual.widgets import DataTable

from portfwd.engine.model import ForwardSnapshot, ForwardState, ForwardStats
from portfwd.humanize import human_bytes
from portfwd.tui.columns import BY_KEY, COLUMN_KEYS, COLUMNS
from portfwd.tui.format import (
    context_text,
    local_compact,
    local_text,
    namespace_text,
    rate_text,
    reason_text,
    remote_compact,
    remote_text,
    status_cell,
    status_compact,
    target_pod_text,
    target_text,
    uptime_text,
)
from portfwd.tui.grouping import GroupIndex
from portfwd.tui.widgets.fitted_table import FittedTable

__all__ = ["COLUMNS", "COLUMN_KEYS", "ForwardTable", "matches"]

_RUNNING = (ForwardState.ACTIVE, ForwardState.RECONNECTING)


def matches(snap: ForwardSnapshot, query: str, group: str = "") -> bool:
    """Every whitespace-separated word of `query` appears somewhere in the row."""
    if not query.strip():
        return True
    hay = " ".join(
        (
            group,
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


@dataclass
class _Rate:
    at: float
    bytes_in: int
    bytes_out: int
    rate_in: float = 0.0
    rate_out: float = 0.0


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
        super().__init__(COLUMNS, id=id)
        self.clock = clock
        self.snapshots: dict[str, ForwardSnapshot] = {}
        self.notes: dict[str, str] = {}  # shown in "Last error" when the engine has no reason
        self.filter_text = ""
        self.default_context = ""  # the header's: a context column of only this one is hidden
        self.groups = GroupIndex()  # the profiles file's forwards: the Group column
        self._rates: dict[str, _Rate] = {}

    @property
    def selected_id(self) -> str | None:
        return self.selected_key

    def hidden_columns(self) -> list[str]:
        contexts = {cells["context"].plain for cells in self._full.values()}
        return ["context"] if contexts <= {self.default_context, ""} else []

    # -- rendering of one row -----------------------------------------------------------------

    def _row_cells(self, snap: ForwardSnapshot, now: float) -> dict[str, Text]:
        rate = self._rates.get(snap.id)
        reason = reason_text(snap.reason or self.notes.get(snap.id, ""))
        # Text, not str: DataTable reads a str cell as markup, and names, addresses such as
        # [fe80::1] and error text are shown verbatim.
        return {
            "status": status_cell(snap, now),
            "status_compact": status_compact(snap, now),
            "group": Text(self.groups.label(snap.spec)),
            "context": Text(context_text(snap)),
            "namespace": Text(namespace_text(snap)),
            "target": Text(target_text(snap)),
            "pod": Text(target_pod_text(snap)),
            "local": Text(local_text(snap)),
            "local_compact": Text(local_compact(snap)),
            "remote": Text(remote_text(snap)),
            "remote_compact": Text(remote_compact(snap)),
            "uptime": Text(uptime_text(snap, now)),
            "conns": Text(str(snap.stats.connections_open)),
            "bytes_in": Text(human_bytes(snap.stats.bytes_in)),
            "bytes_out": Text(human_bytes(snap.stats.bytes_out)),
            "rate": Text(rate_text(rate.rate_in, rate.rate_out) if rate else ""),
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
        self.set_rows((snap.id, self._row_cells(snap, now)) for snap in self._ordered())

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
        present = self.has_row(snap.id)
        if present and not visible:
            self.drop_row(snap.id)
        elif not present and visible and self.sort_column is not None:
            self.rebuild()
        elif visible:
            self.put_row(snap.id, self._row_cells(snap, self.clock()))

    def _update_row(self, snap: ForwardSnapshot) -> None:
        self.put_row(snap.id, self._row_cells(snap, self.clock()))

    def remove_forward(self, fid: str) -> None:
        self.snapshots.pop(fid, None)
        self.notes.pop(fid, None)
        self._rates.pop(fid, None)
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
        """Bytes per second in and out over the last tick."""
        rate = self._rates.get(fid)
        return (rate.rate_in, rate.rate_out) if rate else (0.0, 0.0)

    def tick(self) -> None:
        """Once a second while visible: uptime, byte rates and retry countdowns."""
        now = self.clock()
        for fid, snap in self.snapshots.items():
            prev = self._rates.get(fid)
            bin_, bout = snap.stats.bytes_in, snap.stats.bytes_out
            if prev is None:
                rate = _Rate(now, bin_, bout)
            elif now > prev.at:
                dt = now - prev.at
                rate = _Rate(
                    now, bin_, bout, (bin_ - prev.bytes_in) / dt, (bout - prev.bytes_out) / dt
                )
            else:
                rate = prev  # no time passed (a second tick in the same instant)
            self._rates[fid] = rate
            if self.has_row(fid) and (
                snap.state in _RUNNING
                or snap.next_retry_at is not None
                or prev is None
                or prev.rate_in
                or prev.rate_out
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
