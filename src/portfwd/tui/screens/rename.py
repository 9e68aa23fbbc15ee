"""Rename a forward (`R` on the dashboard): the name `portfwd stop NAME`, `logs NAME` and the
profiles know it by.

A rename is a label only: the engine keeps the forward running (its connections stay). The
name is checked here as the engine checks it (letters, digits, `.`, `_`, `-`); a name another
forward has is refused by the engine, and the dashboard says so in a toast.
"""

from __future__ import annotations

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Static

from portfwd.engine.model import NAME_RE, ForwardSnapshot
from portfwd.tui.format import forward_label

HINT = "letters, digits, '.', '_' and '-' (up to 63); empty: no name (its id)"


class RenameScreen(ModalScreen[str | None]):
    """Dismissed with the new name ("" for none), or None when cancelled."""

    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, snap: ForwardSnapshot) -> None:
        super().__init__(classes="dialog-screen")
        self._snap = snap

    def compose(self) -> ComposeResult:
        snap = self._snap
        with Vertical(classes="dialog"):
            yield Label(f"Rename {forward_label(snap)}", classes="dialog-title", markup=False)
            yield Label("Name")
            yield Input(snap.spec.name or "", id="rename-name", placeholder=snap.id)
            yield Static(HINT, id="rename-check", classes="check", markup=False)
            with Horizontal(classes="buttons"):
                yield Button("Rename (enter)", variant="primary", id="rename")
                yield Button("Cancel (esc)", id="cancel")

    def on_mount(self) -> None:
        self.query_one("#rename-name", Input).focus()

    def _submit(self) -> None:
        name = self.query_one("#rename-name", Input).value.strip()
        if name and not NAME_RE.fullmatch(name):
            self.query_one("#rename-check", Static).update(f"not usable: {HINT}")
            return
        self.dismiss(name)

    @on(Input.Submitted, "#rename-name")
    def _submitted(self, event: Input.Submitted) -> None:
        self._submit()

    @on(Button.Pressed, "#rename")
    def _rename_pressed(self, event: Button.Pressed) -> None:
        self._submit()

    @on(Button.Pressed, "#cancel")
    def _cancel_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(None)

    def action_cancel(self) -> None:
        self.dismiss(None)
