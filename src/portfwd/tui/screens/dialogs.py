"""Small modal screens: confirm, edit a forward's local side, help (every key, wrapped)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

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


HELP_SECTIONS: tuple[tuple[str, tuple[tuple[str, str], ...]], ...] = (
    (
        "Dashboard",
        (
            ("n", "new forward: context → namespace → kind → resource → port"),
            ("b", "browse the namespace's services, pods, deployments, statefulsets"),
            ("space", "start / stop the selected forward"),
            ("r", "restart the selected forward"),
            ("d", "delete the selected forward (asks first when it is running)"),
            ("e", "edit local port and address"),
            ("R", "rename: the name `portfwd stop NAME` takes (it keeps running)"),
            ("a", "auto-reconnect on/off (⊘ marks a forward with it off)"),
            (
                "i",
                "details of the selected forward: whole error, pod, node, connections, "
                "history, recent log (again: fold)",
            ),
            ("l, enter", "logs of the selected forward (or double-click its row)"),
            ("L", "app-wide log"),
            ("y", "copy the equivalent kubectl port-forward command (tmux: its paste buffer)"),
            (
                "o",
                "open http(s)://localhost:PORT in the browser (https for a port named "
                "https, 443 or 8443)",
            ),
            ("/", "filter rows (words, all must match); esc clears"),
            ("s / S", "sort by the next column / reverse the order (or click a header)"),
            ("↑ ↓ j k", "move (or click a row)"),
            ("pgup pgdn", "a page up / down"),
            ("home end g G", "first / last row"),
        ),
    ),
    (
        "Resources (b)",
        (
            ("f, enter", "forward the selected resource: pick its port(s), then the local port"),
            ("0 1 2 3 4", "show all / services / pods / deployments / statefulsets"),
            ("/", "filter rows; esc clears, esc again goes back"),
            ("ctrl+r", "watch again now (after an error)"),
            ("↑ ↓ j k", "move (or click a row; double-click forwards it)"),
            ("home end g G", "first / last row"),
        ),
    ),
    (
        "New forward picker",
        (
            ("type", "fuzzy-filter the list"),
            ("↑ ↓, pgup pgdn", "move"),
            ("enter", "choose"),
            (
                "tab",
                "mark a port and go to the next (on the port step), then enter; "
                "next field (local step)",
            ),
            ("esc", "back one step (closes on the first step)"),
            ("ctrl+r", "reload the current list (after an error)"),
        ),
    ),
    (
        "Profiles view",
        (
            ("enter, space", "start the profile or group (stop it when all are active)"),
            ("s", "save the dashboard's forwards as a profile"),
            ("a", "add the dashboard's selected forward to the profile / group"),
            ("y", "copy the kubectl port-forward commands of the profile / group"),
            ("r", "read the profiles file again"),
            ("esc, q", "back"),
        ),
    ),
    (
        "Several forwards",
        (
            ("space", "mark / unmark a forward"),
            ("*", "mark all / none"),
            ("s / x", "start / stop the marked forwards (every forward when none is marked)"),
            ("esc, q", "back"),
        ),
    ),
    (
        "Logs",
        (
            ("f", "follow (live tail) on/off; the title says which, and counts new lines"),
            ("c", "clear the view"),
            ("esc, q", "back"),
        ),
    ),
    (
        "Everywhere",
        (
            ("?", "this help (↑ ↓ scroll it)"),
            ("ctrl+p", "command palette: every action by name"),
            ("q, ctrl+c", "quit: saves the session, then stops every forward"),
            ("", "(q on the dashboard; ctrl+c from any screen)"),
            ("", "attached to the daemon, q detaches: its forwards keep running"),
            ("Q", "attached to the daemon: stop all its forwards, then detach"),
            ("p", "profiles view (from the dashboard): start/stop a profile or group"),
            (":", "quick add (from the dashboard): svc/web 8080:80 -n NS, or a kubectl line"),
            ("m", "several forwards (from the dashboard): mark, then start / stop them all"),
        ),
    ),
)


def help_table() -> Table:
    """Key and what it does, the description wrapping to the dialog's width."""
    table = Table(box=None, show_header=False, padding=(0, 1), expand=True)
    table.add_column("key", style="bold cyan", max_width=20)
    table.add_column("what", ratio=1)
    for n, (title, keys) in enumerate(HELP_SECTIONS):
        if n:
            table.add_row("", "")
        table.add_row(Text(title, style="bold"), "")
        for key, what in keys:
            table.add_row(Text(f"  {key}"), Text(what))
    return table


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
