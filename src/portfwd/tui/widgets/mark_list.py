"""A SelectionList whose marked and unmarked rows differ by glyph, not colour alone.

Textual draws the same `X` in every box and tells marked from unmarked by colour only, which
a monochrome terminal, a colour-blind user or a screen reader cannot see (issue 18): here a
marked row shows `✔` and an unmarked one an empty box.
"""

from __future__ import annotations

from rich.segment import Segment
from textual.strip import Strip
from textual.widgets import SelectionList
from textual.widgets.option_list import OptionDoesNotExist

MARKED = "✔"
UNMARKED = " "


class MarkList(SelectionList[str]):
    def render_line(self, y: int) -> Strip:
        line = super().render_line(y)
        try:
            selection = self.get_option_at_index(round(self.scroll_offset.y) + y)
        except OptionDoesNotExist:
            return line
        segments = list(line)
        if len(segments) < 2:
            return line
        glyph = MARKED if selection.value in self.selected else UNMARKED
        inner = segments[1]
        segments[1] = Segment(glyph, inner.style, inner.control)
        return Strip(segments, line.cell_length)
