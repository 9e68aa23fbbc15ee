"""Which of a table's columns fit the terminal, and how wide each one is.

Pure functions, no Textual. The widths come from what the rows show *now* (a rate that was
long a minute ago does not keep its column wide), and when they do not all fit the columns
go by priority: status, target, local, remote, connections and the last error stay longest;
the last error is cut (with …) to what is left and the detail pane shows it whole.

Before a column that must stay whole (the target) is cut, the table takes shorter forms of
other columns, one step at a time (`fit`'s `steps`): the dashboard first drops the remote
port's decoration (`443 → 8443 (https)` -> `443→8443`), then shortens the local side and the
status, then shows the remote port alone (`443`). A header is never cut (`Last erro`): a
column is at least its label wide.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from portfwd.engine.model import ForwardSnapshot, ForwardState
from portfwd.tui.widgets.traffic_plot import RATE_CELL_WIDTH, rates_now

SORT_ARROW_WIDTH = 2  # " ▲" after the label of the sort column
FLEX_RESERVE = 24  # what the last error is given before less important columns get room
# What the last error may claim before a spare column (the name) gets room: beyond this it
# is cut, and the detail pane shows it whole (a long error kept the name off even at 200).
FLEX_ROOMY = 48
CORE_PRIORITY = 5  # columns up to this priority must fit (else local/remote go compact)


@dataclass(frozen=True)
class Column:
    key: str
    label: str
    sort_key: Callable[[Any, float], Any]  # (the row's object, now) -> a sortable value
    priority: int  # lower: kept longer as the terminal narrows
    min_width: int = 0  # > 0: may be cut (…) down to this many cells instead of dropped
    flex: bool = False  # takes whatever width is left (the last error)
    compact: bool = False  # has a shorter form (`<key>_compact`), used when the core does not fit
    # "middle": a cut keeps the start and the end (`deploy/ap…-7d9f-qwert`): the end tells
    # pods, services and contexts apart. "end": the start only (an error message).
    cut: str = "end"
    keep_whole: bool = False  # other columns take their shorter forms before this one is cut
    spare: bool = False  # shown only in room the flexible column does not need whole
    # Once shown, at least this wide: a value that changes every second while traffic flows
    # (the rate) does not resize its column every second (issue 22).
    reserve: int = 0


_STATE_ORDER = {
    ForwardState.ERROR: 0,
    ForwardState.RECONNECTING: 1,
    ForwardState.DEGRADED: 1,
    ForwardState.STARTING: 2,
    ForwardState.ACTIVE: 3,
    ForwardState.IDLE: 4,
    ForwardState.STOPPED: 5,
}


def _uptime_key(s: ForwardSnapshot, now: float) -> float:
    serving = s.state in (ForwardState.ACTIVE, ForwardState.DEGRADED)
    return now - s.started_at if s.started_at and serving else -1.0


# Display order, left to right.
COLUMNS: tuple[Column, ...] = (
    Column("status", "Status", lambda s, now: _STATE_ORDER[s.state], 0, compact=True),
    # The name `portfwd stop NAME` and the profiles know it by (its id when it has none):
    # where there is room; the detail pane always says it.
    Column("name", "Name", lambda s, now: s.spec.name or s.id, 9, spare=True),
    # The profiles (and groups) a forward belongs to; empty, so not shown, without any.
    Column("group", "Group", lambda s, now: s.spec.name or "", 11, min_width=8),
    # Shown only when the rows hold more than one context; then it tells two `svc/echo` rows
    # of two clusters apart, so it goes before the ports.
    Column(
        "context",
        "Context",
        lambda s, now: s.context or s.spec.context or "",
        2,
        min_width=7,
        cut="middle",
        keep_whole=True,
    ),
    Column("namespace", "Namespace", lambda s, now: s.namespace or s.spec.namespace or "", 11),
    Column(
        "target",
        "Target",
        lambda s, now: s.spec.target,
        1,
        min_width=8,
        cut="middle",
        keep_whole=True,
    ),
    Column("pod", "Pod", lambda s, now: s.pod, 9, min_width=10, cut="middle"),
    Column("local", "Local", lambda s, now: s.local_port, 2, compact=True),
    Column("remote", "Remote", lambda s, now: s.remote_port or 0, 3, compact=True),
    Column("uptime", "Uptime", _uptime_key, 10),
    Column("conns", "Conns", lambda s, now: s.stats.connections_open, 4),
    Column("bytes_in", "In", lambda s, now: s.stats.bytes_in, 6),
    Column("bytes_out", "Out", lambda s, now: s.stats.bytes_out, 7),
    Column(
        "rate",
        "Rate ↓↑",
        lambda s, now: sum(rates_now(s.stats, now)),
        8,
        reserve=RATE_CELL_WIDTH,
    ),
    Column("error", "Last error", lambda s, now: s.reason, 5, min_width=8, flex=True),
)
COLUMN_KEYS = tuple(c.key for c in COLUMNS)
BY_KEY = {c.key: c for c in COLUMNS}


@dataclass(frozen=True)
class Layout:
    """The columns shown, in display order, with their content widths."""

    widths: tuple[tuple[str, int], ...]
    step: int = 0  # 0: every column in its full form; n: the n-th step of shorter forms

    @property
    def compact(self) -> bool:
        return self.step > 0

    @property
    def keys(self) -> tuple[str, ...]:
        return tuple(k for k, _ in self.widths)

    def width(self, key: str) -> int:
        return dict(self.widths)[key]


def natural_widths(
    rows: Iterable[Mapping[str, int]],
    sort_column: str | None,
    hidden: Iterable[str] = (),
    columns: tuple[Column, ...] = COLUMNS,
) -> dict[str, int]:
    """The widest cell of each column over `rows` (cell widths by key), at least its label;
    0 for a column with nothing to show (every cell empty, or `hidden`: e.g. the context when
    every row is in the one the header names)."""
    widest = {c.key: 0 for c in columns}
    for row in rows:
        for key, width in row.items():
            if width > widest.get(key, 0):
                widest[key] = width
    for col in columns:
        if widest[col.key] or col.key == sort_column:
            label = len(col.label) + (SORT_ARROW_WIDTH if col.key == sort_column else 0)
            widest[col.key] = max(widest[col.key], label)
    for key in hidden:
        if key != sort_column:
            widest[key] = 0
    return widest


def _floor(col: Column) -> int:
    """The narrowest a column is cut to: its minimum, never less than its label."""
    return max(col.min_width, len(col.label))


def _fit_once(
    columns: tuple[Column, ...], natural: Mapping[str, int], available: int, padding: int
) -> dict[str, int]:
    chosen: dict[str, int] = {}
    used = 0
    pad = 2 * padding
    by_priority = sorted(columns, key=lambda c: c.priority)
    for col in by_priority:
        want = natural[col.key]
        if not want or col.spare:
            continue  # nothing to show, or only in room left over (below)
        if col.flex:
            want = min(want, max(FLEX_RESERVE, _floor(col)))
        least = min(_floor(col), want)
        if used + want + pad <= available:
            chosen[col.key] = want
            used += want + pad
        elif col.min_width and used + least + pad <= available:
            chosen[col.key] = available - used - pad  # what is left, at least its floor
            used = available
        elif col.min_width and col.priority <= CORE_PRIORITY:
            # A core column a few cells short: cut the cuttable ones already in (least
            # important first, never below their floor) rather than drop it for good and
            # let a less important column take its place.
            need = used + least + pad - available
            cuttable = [
                c for c in reversed(by_priority) if c.key in chosen and c.min_width and not c.flex
            ]
            slack = sum(max(0, chosen[c.key] - _floor(c)) for c in cuttable)
            if need <= slack:
                for c in cuttable:
                    take = min(need, max(0, chosen[c.key] - _floor(c)))
                    chosen[c.key] -= take
                    used -= take
                    need -= take
                chosen[col.key] = available - used - pad
                used = available
    # Columns that were cut get their width back first (in priority order), then the flexible
    # one takes the rest, so the table always spans the terminal.
    left = available - used
    for col in by_priority:
        if col.key in chosen and not col.flex and left > 0:
            grow = min(left, natural[col.key] - chosen[col.key])
            if grow > 0:
                chosen[col.key] += grow
                left -= grow
    flex = next((c.key for c in columns if c.flex and c.key in chosen), None)
    room = left
    if flex is not None:
        # The last error whole first, when it can be; when it is cut anyway, it keeps
        # FLEX_ROOMY and a spare column takes what is left (issue 19: the name never showed).
        need = max(0, natural[flex] - chosen[flex])
        if need > left:
            need = max(0, min(natural[flex], FLEX_ROOMY) - chosen[flex])
        room = left - need
    for col in by_priority:
        want = natural[col.key]
        if col.spare and want and want + pad <= room:
            chosen[col.key] = want
            room -= want + pad
            left -= want + pad
    if flex is not None:
        chosen[flex] += left
    return chosen


def _fits_whole(
    columns: tuple[Column, ...], chosen: Mapping[str, int], natural: Mapping[str, int]
) -> bool:
    """Every core column is on screen, and the ones to keep whole are not cut."""
    for c in columns:
        if not natural[c.key] or c.priority > CORE_PRIORITY:
            continue
        if c.key not in chosen:
            return False
        if c.keep_whole and chosen[c.key] < natural[c.key]:
            return False
    return True


def fit(
    natural: Mapping[str, int],
    steps: Sequence[Mapping[str, int]],
    available: int,
    padding: int = 1,
    columns: tuple[Column, ...] = COLUMNS,
) -> Layout:
    """The columns that fit in `available` cells (each column also takes `padding` on both
    sides). `steps`: the widths of shorter forms, taken one step after another (each step
    replaces some columns' widths) until every core column shows and the ones to keep whole
    are not cut; the last step when none does."""
    chosen = _fit_once(columns, natural, available, padding)
    step = 0
    for n, widths in enumerate(steps, start=1):
        if _fits_whole(columns, chosen, {**natural, **steps[step - 1]} if step else natural):
            break
        chosen = _fit_once(columns, {**natural, **widths}, available, padding)
        step = n
    return Layout(tuple((c.key, chosen[c.key]) for c in columns if c.key in chosen), step)
