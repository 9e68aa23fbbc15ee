"""The dashboard's key bar: the keys a user needs most, as many as the width holds.

Textual's Footer shows every binding marked `show` and, at 80 columns, cut the last ones off
mid-word (`:` quick add, `p` profiles and `y` copy were not on it at all). Here each key has
a rank: the bar takes the best-ranked keys that fit the width whole, and shows them in a
fixed order, so a key never moves when the terminal widens. Every key stays in `?`.
A click on a key runs its action, as on Textual's Footer.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from rich.style import Style
from rich.text import Text
from textual import events
from textual.widget import Widget

GAP = 1  # cells between two keys (the key's own colour sets them apart)


@dataclass(frozen=True)
class Key:
    key: str  # as shown
    label: str
    action: str  # run on click: "app.quick_add", "screen.new_forward"
    rank: int  # lower: needed more, shown first when the width is short

    @property
    def width(self) -> int:
        return len(self.key) + 1 + len(self.label)


# Display order; `rank` decides which fit.
DASHBOARD_KEYS: tuple[Key, ...] = (
    Key("n", "New", "screen.new_forward", 2),
    Key(":", "Quick add", "app.quick_add", 3),
    Key("b", "Browse", "screen.resources", 5),
    Key("space", "Start/Stop", "screen.start_stop", 4),
    Key("l", "Logs", "screen.logs", 8),
    Key("i", "Details", "screen.toggle_detail", 10),
    Key("/", "Filter", "screen.filter", 9),
    Key("p", "Profiles", "app.profiles", 6),
    Key("y", "Copy cmd", "screen.copy_command", 7),
    Key("r", "Restart", "screen.restart", 11),
    Key("d", "Delete", "screen.delete", 12),
    Key("e", "Edit", "screen.edit", 13),
    Key("o", "Open", "screen.open_browser", 14),
    Key("m", "Mark", "app.bulk", 15),
    Key("s", "Sort", "screen.cycle_sort", 16),
    Key("L", "All logs", "screen.all_logs", 17),
    Key("?", "Help", "app.help", 0),
    Key("q", "Quit", "app.quit", 1),
)


def fitting(keys: Sequence[Key], width: int) -> list[Key]:
    """The best-ranked keys whose entries fit `width` whole, in display order."""
    chosen: set[Key] = set()
    used = 0
    for key in sorted(keys, key=lambda k: k.rank):
        need = key.width + (GAP if chosen else 0)
        if used + need > width:
            continue  # a shorter, lower-ranked one may still fit
        chosen.add(key)
        used += need
    return [k for k in keys if k in chosen]


class KeyBar(Widget):
    DEFAULT_CSS = """
    KeyBar {
        dock: bottom;
        height: 1;
        background: $footer-background;
        color: $footer-foreground;
    }
    KeyBar > .key-bar--key {
        color: $footer-key-foreground;
        background: $footer-key-background;
        text-style: bold;
    }
    """
    COMPONENT_CLASSES = {"key-bar--key"}

    def __init__(self, keys: Sequence[Key], *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.keys = tuple(keys)

    @property
    def shown(self) -> list[Key]:
        return fitting(self.keys, self.size.width)

    def render(self) -> Text:
        key_style = self.get_component_rich_style("key-bar--key")
        text = Text(no_wrap=True, overflow="crop")
        for n, key in enumerate(self.shown):
            if n:
                text.append(" " * GAP)
            click = Style(meta={"@click": key.action})
            text.append(key.key, style=key_style + click)
            text.append(f" {key.label}", style=click)
        return text

    def on_resize(self, event: events.Resize) -> None:
        self.refresh()
