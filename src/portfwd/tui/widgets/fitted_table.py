"""A DataTable whose columns are fitted to its width: the base of the dashboard's and the
resources view's tables.

It keeps every row's cells uncut, decides which columns show and how wide from what the rows
hold now (`portfwd.tui.columns`), and gives the DataTable the cells cut to those widths (with
"…"). The table always spans its width exactly, so it never scrolls sideways.

What it costs is what changed (issue 22: an idle dashboard is idle):
- A changed cell is written in place and only its row is drawn again. DataTable's own
  `update_cell` bumps a counter that is part of every cache key, so one new uptime redraws
  every visible row: here only the cached renders of the changed rows are dropped, and an
  off-screen row is not drawn at all.
- The widest cell of each column is kept as a count of widths, so a change that leaves every
  column's widest cell as it was does not look at the other rows.
- A column that only changes width is resized in place; the rows are re-created only when the
  set of columns changes (a column appears or goes: the rate when traffic starts or stops), on
  sort, filter, or a new list. A column may reserve width (`Column.reserve`) so a value that
  moves every second does not resize it every second.
- Nothing changed, nothing drawn.
"""

from __future__ import annotations

import contextlib
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from rich.text import Text
from textual import events
from textual.binding import Binding
from textual.cache import LRUCache
from textual.widgets import DataTable
from textual.widgets.data_table import CellDoesNotExist, ColumnKey, RowDoesNotExist, RowKey

from portfwd.tui.columns import Column, Layout, fit, natural_widths


def cut(text: Text, width: int, how: str = "end") -> Text:
    """`text` in at most `width` cells, with … where something was cut: at the end, or
    (`how="middle"`) in the middle, keeping the end that tells names apart
    (`deploy/ap…-7d9f-qwert`): a `kind/` prefix stays when there is room for it."""
    if text.cell_len <= width:
        return text
    plain = text.plain
    if how == "middle" and width >= 5 and text.cell_len == len(plain):
        slash = plain.find("/") + 1
        head = slash if 0 < slash <= (width + 1) // 2 else (width - 1) // 3
        tail = width - 1 - head
        return Text.assemble(text[:head], "…", text[len(plain) - tail :], style=text.style)
    short = text.copy()
    short.truncate(max(width, 1), overflow="ellipsis")
    return short


def _same(old: Text | None, new: Text) -> bool:
    """Text's own == ignores the base style: a reason that stays while the row leaves the
    error state must still lose its red."""
    return old is not None and (old.plain, old.style, old.spans) == (
        new.plain,
        new.style,
        new.spans,
    )


def _forget(cache: LRUCache[Any, Any], stale: Callable[[Any], bool]) -> None:
    """Drop the entries of one of DataTable's render caches that `stale` picks."""
    keys = cache.keys()
    for key in [k for k in keys if stale(k)]:
        cache.discard(key)


class FittedTable(DataTable[Any]):
    """Rows by key; subclasses call `set_rows` / `put_row` / `drop_row` with cell texts by
    column key (and `<key>_compact` for a column's short form)."""

    BINDINGS = [
        # k9s/less habits: rows, not columns, are what home/end and g/G jump through.
        Binding("home,g", "scroll_top", "First row", show=False),
        Binding("end,G", "scroll_bottom", "Last row", show=False),
        Binding("j", "cursor_down", "Down", show=False),
        Binding("k", "cursor_up", "Up", show=False),
    ]

    def __init__(
        self,
        columns: tuple[Column, ...],
        *,
        steps: Sequence[Mapping[str, str]] | None = None,
        id: str | None = None,
    ) -> None:
        """`steps`: shorter forms to take one after another when the columns do not fit
        whole, each mapping a column to the cell it shows instead (default: one step, every
        column with a short form shows `<key>_compact`)."""
        super().__init__(id=id, cursor_type="row", zebra_stripes=True)
        self.table_columns = columns
        self.sort_column: str | None = None
        self.sort_reverse = False
        self.column_layout = Layout(())
        # Every cell of every row, uncut, in the order the rows are shown.
        self._full: dict[str, dict[str, Text]] = {}
        self._shown: dict[str, dict[str, Text]] = {}  # what the table holds (cut to width)
        self._relayout_pending = False
        self._labels = {c.key: c.label for c in columns}
        if steps is None:
            compact = {c.key: f"{c.key}_compact" for c in columns if c.compact}
            steps = (compact,) if compact else ()
        self._steps = tuple(dict(step) for step in steps)
        self._cuts = {c.key: c.cut for c in columns}
        self._reserve = {c.key: c.reserve for c in columns if c.reserve}
        # How many cells of each column (and short form) have each width: the widest is the
        # largest key, kept up to date cell by cell.
        self._widths: dict[str, Counter[int]] = {}
        self._dirty_rows: set[str] = set()  # written in place, not drawn again yet
        self._dirty_cells: set[tuple[str, str]] = set()  # (row, column) of those writes
        self._flush_pending = False
        # Columns whose values decide the layout beyond their width (the context column
        # shows only when the rows hold more than one context).
        self.layout_columns: frozenset[str] = frozenset()
        # What the work cost, for the tests that prove a quiet tick costs nothing.
        self.rebuilds = 0  # every row re-created
        self.resizes = 0  # columns resized in place
        self.cell_writes = 0  # cells written in place

    # -- queries ----------------------------------------------------------------------------

    @property
    def selected_key(self) -> str | None:
        if self.row_count == 0:
            return None
        try:
            row_key, _ = self.coordinate_to_cell_key(self.cursor_coordinate)
        except CellDoesNotExist:
            return None
        return str(row_key.value) if row_key.value is not None else None

    @property
    def row_keys(self) -> tuple[str, ...]:
        """The rows the table holds, in order, drawn yet or not: a row added before the
        first layout (or while another screen is on top) is drawn at the next one."""
        return tuple(self._full)

    def visible_ids(self) -> list[str]:
        return [str(r.key.value) for r in self.ordered_rows]

    @property
    def shown_keys(self) -> tuple[str, ...]:
        """The columns on screen now, left to right."""
        return self.column_layout.keys

    def cell_text(self, key: str, column: str) -> str:
        """The whole text of a cell, shown or not (cut or not)."""
        return self._full[key][column].plain

    def shown_cells(self, key: str) -> dict[str, Text]:
        """The row as the table shows it: the columns on screen, each cut to its width."""
        return dict(self._shown[key])

    def key_at(self, row: int) -> str | None:
        if 0 <= row < self.row_count:
            value = self.ordered_rows[row].key.value
            return str(value) if value is not None else None
        return None

    # -- layout -------------------------------------------------------------------------------

    def hidden_columns(self) -> Iterable[str]:
        """Columns with nothing worth showing now (a subclass's rule)."""
        return ()

    def _available(self) -> int:
        # Room for the vertical scrollbar is always kept, so rows coming and going never
        # change the layout.
        return self.size.width - self.styles.scrollbar_size_vertical

    def _count(self, cells: Mapping[str, Text], sign: int) -> None:
        for key, text in cells.items():
            counter = self._widths.get(key)
            if counter is None:
                counter = self._widths[key] = Counter()
            width = text.cell_len
            counter[width] += sign
            if counter[width] <= 0:
                del counter[width]

    def _widest(self, key: str) -> int:
        counter = self._widths.get(key)
        return max(counter) if counter else 0

    def _compute_layout(self) -> Layout:
        widest = {key: self._widest(key) for key in self._widths}
        for key, reserve in self._reserve.items():
            if widest.get(key):  # shown at all: as wide as its widest value will be
                widest[key] = max(widest[key], reserve)
        natural = natural_widths(
            [widest], self.sort_column, self.hidden_columns(), self.table_columns
        )
        steps = [
            {
                key: max(widest.get(source, 0), len(self._labels[key])) if natural[key] else 0
                for key, source in step.items()
            }
            for step in self._steps
        ]
        return fit(natural, steps, self._available(), self.cell_padding, self.table_columns)

    def _shown_cells(self, full: Mapping[str, Text]) -> dict[str, Text]:
        layout = self.column_layout
        sources = self._steps[layout.step - 1] if layout.step else {}
        cuts = self._cuts
        return {
            key: cut(full[sources.get(key, key)], width, cuts[key]) for key, width in layout.widths
        }

    def schedule_relayout(self) -> None:
        if not self._relayout_pending:
            self._relayout_pending = True
            self.call_later(self._relayout)

    def _relayout(self) -> None:
        self._relayout_pending = False
        if self._available() <= 0:
            return
        layout = self._compute_layout()
        if layout == self.column_layout:
            return
        if layout.keys == self.column_layout.keys and layout.step == self.column_layout.step:
            self._resize_columns(layout)
        else:
            self.column_layout = layout
            self._populate()

    def on_resize(self, event: events.Resize) -> None:
        self.schedule_relayout()

    def _populate(self) -> None:
        """Re-create columns and rows with the current layout; the selection stays."""
        self.rebuilds += 1
        selected = self.selected_key
        self.clear(columns=True)
        self._dirty_rows.clear()
        self._dirty_cells.clear()
        for key, width in self.column_layout.widths:
            label = self._labels[key]
            if key == self.sort_column:
                label += " ▼" if self.sort_reverse else " ▲"
            self.add_column(Text(label), width=width, key=key)
        self._shown.clear()
        for key in self._full:
            self._add_row(key)
        if selected is not None and selected in self._shown:
            self.move_cursor(row=self.get_row_index(selected), animate=False)

    def _resize_columns(self, layout: Layout) -> None:
        """Same columns, other widths: resize them and re-cut the cells, rows stay."""
        self.resizes += 1
        old = dict(self.column_layout.widths)
        self.column_layout = layout
        for key, width in layout.widths:
            if old.get(key) != width:
                self.columns[ColumnKey(key)].width = width
        for key, full in self._full.items():
            new = self._shown_cells(full)
            data = self._data.get(RowKey(key))
            if data is not None:
                for column, text in new.items():
                    data[ColumnKey(column)] = text
            self._shown[key] = new
        self._dirty_rows.clear()
        self._dirty_cells.clear()
        self._require_update_dimensions = True
        self._clear_caches()
        self._update_count += 1
        self.refresh()

    def _add_row(self, key: str) -> None:
        shown = self._shown_cells(self._full[key])
        self._shown[key] = shown
        if self.column_layout.widths:
            self.add_row(*(shown[k] for k in self.column_layout.keys), key=key)

    # -- rows ---------------------------------------------------------------------------------

    def set_rows(self, rows: Iterable[tuple[str, dict[str, Text]]]) -> None:
        """Every row anew (sort, filter, a new list): one layout, one rebuild."""
        self._full = dict(rows)
        self._widths = {}
        for cells in self._full.values():
            self._count(cells, 1)
        if self._available() > 0:
            self.column_layout = self._compute_layout()
        self._populate()

    def update_rows(self, rows: Iterable[tuple[str, dict[str, Text]]]) -> None:
        """Like `set_rows`, but when the same rows come in the same order only the cells that
        changed are touched (a live list refreshed every second)."""
        new = dict(rows)
        if list(new) != list(self._full) or not self.column_layout.widths:
            self.set_rows(new.items())
            return
        for key, cells in new.items():
            self.put_row(key, cells)

    def put_row(self, key: str, cells: dict[str, Text]) -> None:
        """Add a row at the end, or change one in place (only the cells whose text changed)."""
        old = self._full.get(key)
        if old is None:
            self._full[key] = cells
            self._count(cells, 1)
            self._add_row(key)
            self.schedule_relayout()
            return
        self._change(key, old, cells)

    def patch_row(self, key: str, cells: Mapping[str, Text]) -> None:
        """Change some cells of a row (the ones a clock tick moves); no such row: nothing."""
        old = self._full.get(key)
        if old is not None:
            self._change(key, old, {**old, **cells})

    def _change(self, key: str, old: Mapping[str, Text], cells: dict[str, Text]) -> None:
        relayout = False
        for column, text in cells.items():
            before = old.get(column)
            if before is not None and before.cell_len == text.cell_len:
                continue
            counter = self._widths.setdefault(column, Counter())
            widest = max(counter) if counter else 0
            if before is not None:
                counter[before.cell_len] -= 1
                if counter[before.cell_len] <= 0:
                    del counter[before.cell_len]
            counter[text.cell_len] += 1
            if max(counter) != widest or column in self.layout_columns:
                relayout = True
        self._full[key] = cells
        self._write(key, self._shown_cells(cells))
        if relayout:
            self.schedule_relayout()

    def _write(self, key: str, new: dict[str, Text]) -> None:
        """The cells that changed, in place; the row is drawn again at the next flush."""
        old = self._shown.get(key, {})
        self._shown[key] = new
        data = self._data.get(RowKey(key))
        if data is None:
            return  # not drawn yet: drawn whole when the layout comes
        changed = False
        for column, text in new.items():
            if not _same(old.get(column), text):
                data[ColumnKey(column)] = text
                self.cell_writes += 1
                self._dirty_cells.add((key, column))
                changed = True
        if changed:
            self._dirty_rows.add(key)
            if not self._flush_pending:
                self._flush_pending = True
                self.call_later(self._flush)

    def _flush(self) -> None:
        """Forget the cached renders of the rows written since, and repaint those rows (an
        off-screen row is not painted; it is drawn from its new cells when scrolled to)."""
        self._flush_pending = False
        rows, self._dirty_rows = self._dirty_rows, set()
        cells, self._dirty_cells = self._dirty_cells, set()
        if not rows:
            return
        indices = {
            index for key in rows if (index := self._row_locations.get(RowKey(key))) is not None
        }
        # Keys hold RowKey/ColumnKey, which equal (and hash as) their strings.
        _forget(self._cell_render_cache, lambda k: (k[0], k[1]) in cells)
        _forget(self._row_render_cache, lambda k: k[0] in rows)
        for index in indices:
            self._row_renderable_cache.discard((self._update_count, index))
        header = self.header_height if self.show_header else 0
        lines = {header + index for index in indices}  # every row is one line high
        _forget(self._line_cache, lambda k: k[0] in lines)
        for index in indices:
            self.refresh_row(index)

    def drop_row(self, key: str) -> None:
        cells = self._full.pop(key, None)
        if cells is not None:
            self._count(cells, -1)
        self._shown.pop(key, None)
        self._dirty_rows.discard(key)
        with contextlib.suppress(RowDoesNotExist):
            self.remove_row(key)
        self.schedule_relayout()

    def visible_rows(self) -> range:
        """The indices of the rows on screen now (one line each, under the header)."""
        header = self.header_height if self.show_header else 0
        first = round(self.scroll_y)
        return range(first, min(self.row_count, first + max(0, self.size.height - header)))

    def has_row(self, key: str) -> bool:
        return key in self._full
