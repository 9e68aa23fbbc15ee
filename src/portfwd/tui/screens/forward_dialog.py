"""Forward one resource from the resources view: its port(s), then the local side.

Like k9s's port-forward dialog (shift-f): the resource's ports are listed (enter picks one,
tab marks several, a number typed for a pod or workload is a port its spec does not declare,
as kubectl allows); with a single TCP port it goes straight to the local port form, the one
the picker's last step uses.
"""

from __future__ import annotations

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.widgets import Input, Label, OptionList, Static
from textual.widgets.option_list import Option

from portfwd.engine.browse import ResourceRow
from portfwd.engine.catalog import PortChoice
from portfwd.engine.model import ForwardSpec
from portfwd.kube import kinds
from portfwd.safetext import escape_controls
from portfwd.tui.format import port_prompt
from portfwd.tui.screens.base import PortfwdModal
from portfwd.tui.widgets.local_form import LocalPortForm, Target


class ForwardDialog(PortfwdModal[list[ForwardSpec] | None]):
    """Returns the specs to add (one per chosen port), or None."""

    BINDINGS = [
        Binding("escape", "back", "Back"),
        Binding("down", "cursor_down", "Down", show=False, priority=True),
        Binding("up", "cursor_up", "Up", show=False, priority=True),
        Binding("tab", "mark", "Mark port", priority=True),
    ]

    def __init__(self, row: ResourceRow, *, context: str, namespace: str) -> None:
        super().__init__(classes="dialog-screen")
        self.row = row
        self.context = context
        self.namespace = namespace
        self.marked: set[int] = set()
        self.step = "port"
        self._extra: PortChoice | None = None  # a typed port the spec does not declare

    @property
    def target(self) -> str:
        return kinds.by_name(self.row.kind).label(self.row.name)

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog forward-dialog"):
            yield Label(
                escape_controls(f"Forward {self.target} in {self.namespace} ({self.context})"),
                classes="dialog-title",
                markup=False,
            )
            yield Static("", id="dialog-hint", markup=False)
            yield Input(placeholder="a port number", id="dialog-port", compact=True)
            yield OptionList(id="dialog-ports")
            yield Vertical(id="dialog-local")

    def on_mount(self) -> None:
        tcp = [p for p in self.row.ports if not p.disabled_reason]
        if len(self.row.ports) == 1 and tcp:
            self._to_local(tcp)
            return
        undeclared = self.row.kind != kinds.SERVICE.name
        self.query_one("#dialog-port", Input).display = undeclared
        hint = "enter picks a port, tab marks several"
        if undeclared:
            hint += "; type a number for one the spec does not declare"
        if not self.row.ports:
            hint = (
                "this service has no ports"
                if not undeclared
                else "no ports declared: type the port number"
            )
        self.query_one("#dialog-hint", Static).update(hint)
        self._refresh_ports()
        (self.query_one("#dialog-port") if undeclared else self.query_one(OptionList)).focus()

    def _choices(self) -> list[PortChoice]:
        return [*self.row.ports, *([self._extra] if self._extra else [])]

    def _refresh_ports(self, highlight: int | None = None) -> None:
        options = self.query_one(OptionList)
        current = options.highlighted
        options.clear_options()
        for p in self._choices():
            prompt = port_prompt(
                p.port,
                p.name,
                p.protocol,
                p.detail,
                marked=p.port in self.marked,
                disabled=p.disabled_reason,
            )
            options.add_option(Option(prompt, id=str(p.port), disabled=bool(p.disabled_reason)))
        target = highlight if highlight is not None else current
        if target is not None and options.option_count:
            options.highlighted = min(target, options.option_count - 1)
        elif options.option_count:
            options.action_first()

    @on(Input.Changed, "#dialog-port")
    def _typed(self, event: Input.Changed) -> None:
        text = event.value.strip()
        port = int(text) if text.isdigit() and 1 <= int(text) <= 65535 else 0
        declared = {p.port for p in self.row.ports}
        self._extra = (
            PortChoice(port, "", "TCP", "not declared in the spec")
            if port and port not in declared
            else None
        )
        index = next((n for n, p in enumerate(self._choices()) if p.port == port), None)
        self._refresh_ports(index)

    @on(Input.Submitted, "#dialog-port")
    def _typed_enter(self) -> None:
        self._choose_highlighted()

    @on(OptionList.OptionSelected, "#dialog-ports")
    def _selected(self, event: OptionList.OptionSelected) -> None:
        self._choose_highlighted()

    def _choose_highlighted(self) -> None:
        options = self.query_one(OptionList)
        index = options.highlighted
        choices = self._choices()
        if index is None or not 0 <= index < len(choices) or choices[index].disabled_reason:
            return
        chosen = [p for p in choices if p.port in self.marked] or [choices[index]]
        self._to_local(chosen)

    def _to_local(self, ports: list[PortChoice]) -> None:
        self.step = "local"
        for selector in ("#dialog-hint", "#dialog-port", "#dialog-ports"):
            self.query_one(selector).display = False
        target = Target(
            target=self.target,
            namespace=self.namespace,
            context=self.context,
            kubeconfig=self.papp.spec_kubeconfig,
            protocol=self.papp.protocol,
        )
        self.query_one("#dialog-local").mount(
            LocalPortForm(target, ports, taken=self.papp.taken_ports)
        )

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in ("cursor_down", "cursor_up", "mark"):
            return self.step == "port"
        return True

    def action_cursor_down(self) -> None:
        self.query_one(OptionList).action_cursor_down()

    def action_cursor_up(self) -> None:
        self.query_one(OptionList).action_cursor_up()

    def action_mark(self) -> None:
        """Mark the highlighted port and move on (like fzf)."""
        options = self.query_one(OptionList)
        index = options.highlighted
        choices = self._choices()
        if index is None or not 0 <= index < len(choices) or choices[index].disabled_reason:
            return
        self.marked.symmetric_difference_update({choices[index].port})
        self._refresh_ports(index)
        options.action_cursor_down()

    def action_back(self) -> None:
        self.dismiss(None)

    @on(LocalPortForm.Submitted)
    def _submitted(self, event: LocalPortForm.Submitted) -> None:
        self.dismiss(event.specs)

    @on(LocalPortForm.Cancelled)
    def _cancelled(self, event: LocalPortForm.Cancelled) -> None:
        self.dismiss(None)
