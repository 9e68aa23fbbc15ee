"""A DataTable whose columns are fitted to its width: the base of the dashboard's and the
resources view's tables.

It keeps every row's cells uncut, decides which columns show and how wide from what the rows
hold now (`portfwd.tui.columns`), and gives the DataTable the cells cut to those widths (with
"…"). The table always spans its width exactly, so it never scrolls sideways. Rows are
re-created only when that layout changes; otherwise a change touches only its cells.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Mapping
from typing import Any

from rich.text import Text
from textual import events
from textual.binding import Binding
from textual.widgets import DataTable
from textual.widgets.data_table import CellDoesNotExist, RowDoesNotExist

from portfwd.tui.columns import Column, Layout, fit, natural_widths


def cut(text: Text, width: int) -> Text:
    """`text` in at most `width` cells, ending in … when something was cut."""
    if text.cell_len <= width:
        return text
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

    def __init__(self, columns: tuple[Column, ...], *, id: str | None = None) -> None:
        super().__init__(id=id, cursor_type="row", zebra_stripes=True)
        self.table_columns = columns
        self.sort_column: str | None = None
        self.sort_reverse = False
        self.column_layout = Layout((), compact=False)
        # Every cell of every row, uncut, in the order the rows are shown.
        self._full: dict[str, dict[str, Text]] = {}
        self._shown: dict[str, dict[str, Text]] = {}  # what the table holds (cut to width)
        self._relayout_pending = False
        self._labels = {c.key: c.label for c in columns}
        self._compact = {c.key: f"{c.key}_compact" for c in columns if c.compact}

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

    def _compute_layout(self) -> Layout:
        widths = [{k: t.cell_len for k, t in cells.items()} for cells in self._full.values()]
        natural = natural_widths(
            widths, self.sort_column, self.hidden_columns(), self.table_columns
        )
        compact = {
            key: max(max((w[source] for w in widths), default=0), len(self._labels[key]))
            for key, source in self._compact.items()
        }
        return fit(natural, compact, self._available(), self.cell_padding, self.table_columns)

    def _shown_cells(self, full: Mapping[str, Text]) -> dict[str, Text]:
        layout = self.column_layout
        compact = self._compact if layout.compact else {}
        return {key: cut(full[compact.get(key, key)], width) for key, width in layout.widths}

    def schedule_relayout(self) -> None:
        if not self._relayout_pending:
            self._relayout_pending = True
            self.call_later(self._relayout)

    def _relayout(self) -> None:
        self._relayout_pending = False
        if self._available() <= 0:
            return
        layout = self._compute_layout()
        if layout != self.column_layout:
            self.column_layout = layout
            self._populate()

    def on_resize(self, event: events.Resize) -> None:
        self.schedule_relayout()

    def _populate(self) -> None:
        """Re-create columns and rows with the current layout; the selection stays."""
        selected = self.selected_key
        self.clear(columns=True)
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

    def _add_row(self, key: str) -> None:
        shown = self._shown_cells(self._full[key])
        self._shown[key] = shown
        if self.column_layout.widths:
            self.add_row(*(shown[k] for k in self.column_layout.keys), key=key)

    # -- rows ---------------------------------------------------------------------------------

    def set_rows(self, rows: Iterable[tuple[str, dict[str, Text]]]) -> None:
        """Every row anew (sort, filter, a new list): one layout, one rebuild."""
        self._full = dict(rows)
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
        present = key in self._full
        self._full[key] = cells
        if not present:
            self._add_row(key)
        else:
            old = self._shown.get(key, {})
            new = self._shown_cells(cells)
            for column, text in new.items():
                if not _same(old.get(column), text):
                    try:
                        self.update_cell(key, column, text, update_width=False)
                    except (CellDoesNotExist, RowDoesNotExist):
                        break
            self._shown[key] = new
        self.schedule_relayout()  # the widest value of a column may have changed

    def drop_row(self, key: str) -> None:
        self._full.pop(key, None)
        self._shown.pop(key, None)
        with contextlib.suppress(RowDoesNotExist):
            self.remove_row(key)
        self.schedule_relayout()

    def has_row(self, key: str) -> bool:
        return key in self._full
