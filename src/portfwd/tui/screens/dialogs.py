"""Small modal screens: confirm, edit a forward's local side, help (every key, wrapped)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Static

from portfwd.engine.model import ForwardSnapshot, ForwardSpec
from portfwd.safetext import escape_lines
from portfwd.tui.format import forward_label
from portfwd.tui.ports import PortCheck, check_port_all, parse_addresses


class ConfirmScreen(ModalScreen[bool]):
    BINDINGS = [
        Binding("y", "confirm", "Yes"),
        Binding("n,escape", "cancel", "No"),
    ]

    def __init__(self, question: str, *, confirm_label: str = "OK") -> None:
        super().__init__(classes="dialog-screen")
        self._question = question
        self._confirm_label = confirm_label

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Static(escape_lines(self._question), id="question", markup=False)
            with Horizontal(classes="buttons"):
                yield Button(f"{self._confirm_label} (y)", variant="error", id="yes")
                yield Button("Cancel (n)", id="no")

    def on_mount(self) -> None:
        self.query_one("#no", Button).focus()

    def action_confirm(self) -> None:
        self.dismiss(True)

    def action_cancel(self) -> None:
        self.dismiss(False)

    @on(Button.Pressed)
    def _pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "yes")


class EditScreen(ModalScreen[ForwardSpec | None]):
    """Change the local port and address; validated live like the picker's local step."""

    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, snap: ForwardSnapshot, *, taken: Mapping[int, str]) -> None:
        super().__init__(classes="dialog-screen")
        self._snap = snap
        self._taken = dict(taken)
        self._port_ok = True
        self._own_port = snap.local_port
        # What the last finished check looked at (the form as it opens needs none).
        self._checked_form = (str(snap.local_port or ""), ",".join(snap.spec.addresses))

    def compose(self) -> ComposeResult:
        snap = self._snap
        with Vertical(classes="dialog"):
            yield Label(f"Edit {forward_label(snap)}", classes="dialog-title", markup=False)
            yield Label("Local port")
            yield Input(str(snap.local_port or ""), id="edit-port", placeholder="1-65535")
            yield Static("", id="edit-port-check", classes="check", markup=False)
            yield Label("Local address(es), comma-separated")
            yield Input(",".join(snap.spec.addresses), id="edit-address")
            with Horizontal(classes="buttons"):
                yield Button("Apply (enter)", variant="primary", id="apply")
                yield Button("Cancel (esc)", id="cancel")

    def on_mount(self) -> None:
        self.query_one("#edit-port", Input).focus()

    def _addresses(self) -> tuple[str, ...]:
        return parse_addresses(self.query_one("#edit-address", Input).value)

    @on(Input.Changed)
    def _changed(self, event: Input.Changed) -> None:
        self._validate()

    @work(exclusive=True, group="validate")
    async def _validate(self) -> None:
        form = self._form()
        text = form[0]
        addrs = self._addresses()
        if self._own_port and text.strip() == str(self._own_port):
            # Our own listener holds this port: the engine rebinds it on apply.
            result = PortCheck(True, "current port")
        else:
            result = await check_port_all(text, addrs, self._taken)
        self._checked_form = form
        self._show(result)

    def _form(self) -> tuple[str, str]:
        return (
            self.query_one("#edit-port", Input).value,
            self.query_one("#edit-address", Input).value,
        )

    def _show(self, result: PortCheck) -> None:
        self._port_ok = result.ok
        check = self.query_one("#edit-port-check", Static)
        check.update(("✓ " if result.ok else "✖ ") + result.message)
        check.set_class(not result.ok, "invalid")
        self.query_one("#apply", Button).disabled = not result.ok

    def _result(self) -> ForwardSpec | None:
        text = self.query_one("#edit-port", Input).value.strip()
        # Enter typed right after a key may arrive before that key's check has finished.
        if not self._port_ok or self._checked_form != self._form() or not text.isdigit():
            return None
        return replace(
            self._snap.spec,
            local_port=int(text),
            addresses=self._addresses(),
        )

    @on(Input.Submitted)
    def _submitted(self, event: Input.Submitted) -> None:
        self._apply()

    @on(Button.Pressed, "#apply")
    def _apply(self) -> None:
        spec = self._result()
        if spec is None:
            checking = self._checked_form != self._form()
            self.notify(
                "checking the local port…" if checking else "fix the local port first",
                severity="warning",
            )
            return
        self.dismiss(spec)

    @on(Button.Pressed, "#cancel")
    def action_cancel(self) -> None:
        self.dismiss(None)


# Two columns of short lines: the whole of it is two screens at 80x24 (issue 18). The left
# column is the dashboard's; the right one the views it opens.
Section = tuple[str, tuple[tuple[str, str], ...]]
HELP_LEFT: tuple[Section, ...] = (
    (
        "Dashboard",
        (
            ("n", "new forward (picker)"),
            ("b", "browse the namespace"),
            ("space", "start / stop"),
            ("r", "restart"),
            ("d", "delete (asks if up)"),
            ("e", "edit local port"),
            ("R", "rename (keeps running)"),
            ("a", "auto-reconnect (⊘ off)"),
            ("z", "lazy (◌ when idle)"),
            ("i", "details (again: fold)"),
            ("l, enter", "its logs"),
            ("L", "app-wide log"),
            ("h / H", "HTTP view / on, off"),
            ("t / c", "pod log / container"),
            ("y", "copy kubectl command"),
            ("o", "open in the browser"),
            ("/", "filter; esc clears"),
            ("s / S", "sort / reverse"),
            ("↑ ↓ j k", "move (or click)"),
            ("home end g G", "first / last row"),
            ("pgup pgdn", "a page up / down"),
        ),
    ),
    (
        "Quick add (:)",
        (
            ("ctx NAME", "switch context"),
            ("ns NAME", "switch namespace"),
            ("→", "take the completion"),
        ),
    ),
    (
        "Everywhere",
        (
            ("?", "this help (↑ ↓ scroll)"),
            ("ctrl+p", "command palette"),
            ("q, ctrl+c", "quit (daemon: detach)"),
            ("Q", "daemon: stop all, quit"),
            (":", "quick add: svc/web 8080:80"),
            ("p", "profiles view"),
            ("m", "several forwards"),
        ),
    ),
)
HELP_RIGHT: tuple[Section, ...] = (
    (
        "Resources (b)",
        (
            ("f F enter", "forward it"),
            ("N", "forward listed Services"),
            ("0 1 2 3 4", "all svc pod deploy sts"),
            ("/", "filter; esc clears"),
            ("ctrl+r", "watch again now"),
        ),
    ),
    (
        "New forward picker",
        (
            ("type", "fuzzy-filter the list"),
            ("↑ ↓ pgup pgdn", "move; enter chooses"),
            ("tab", "mark port; next field"),
            ("esc", "back one step"),
            ("ctrl+r", "reload the list"),
        ),
    ),
    (
        "Profiles view",
        (
            ("enter space", "start / stop it"),
            ("s", "save forwards as one"),
            ("a", "add selected forward"),
            ("y", "copy kubectl commands"),
            ("r", "read the file again"),
            ("↑ ↓ j k g G", "move"),
            ("esc, q", "back"),
        ),
    ),
    (
        "Several forwards",
        (
            ("space", "mark / unmark"),
            ("*", "mark all / none"),
            ("s / x", "start / stop marked"),
            ("esc, q", "back"),
        ),
    ),
    (
        "Logs",
        (
            ("f", "follow on/off"),
            ("c", "clear the view"),
            ("esc, q", "back"),
        ),
    ),
    (
        "HTTP requests (h)",
        (
            ("type", "filter"),
            ("ctrl+o", "one forward / all"),
        ),
    ),
)
HELP_SECTIONS: tuple[Section, ...] = HELP_LEFT + HELP_RIGHT


def _column(sections: tuple[Section, ...]) -> Group:
    parts: list[Text | Table] = []
    for n, (title, keys) in enumerate(sections):
        parts.append(Text(("\n" if n else "") + title, style="bold"))
        table = Table(box=None, show_header=False, padding=(0, 1), expand=True)
        table.add_column("key", style="bold cyan", max_width=13)  # a long one wraps
        table.add_column("what", ratio=1)
        for key, what in keys:
            table.add_row(Text(key), Text(what))
        parts.append(table)
    return Group(*parts)


def help_table() -> Table:
    """The dashboard's keys on the left, its views' on the right; descriptions wrap within
    their column."""
    grid = Table.grid(expand=True, padding=(0, 1))
    grid.add_column(ratio=1)
    grid.add_column(ratio=1)
    grid.add_row(_column(HELP_LEFT), _column(HELP_RIGHT))
    return grid


class HelpScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,q,question_mark", "close", "Close")]

    def __init__(self) -> None:
        super().__init__(classes="dialog-screen")

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog help"):
            yield Label("Keys  (esc closes)", classes="dialog-title")
            with VerticalScroll(id="help-scroll"):
                yield Static(help_table(), id="help-text")

    def on_mount(self) -> None:
        self.query_one("#help-scroll").focus()

    def action_close(self) -> None:
        self.dismiss(None)
