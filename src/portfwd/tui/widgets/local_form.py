"""The local side of new forwards: a local port per remote port, the listen address and
auto-reconnect, each checked as you type; Start and Back.

Shared by the picker's last step and the resources view's port dialog. Compact (one line per
field) so it fits a 80x24 terminal with its buttons. The suggestion follows the README's
rule (`ports.suggest_port`); the checks run a real bind in a thread (`ports.check_port_all`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from textual import on, work
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.widgets import Button, Checkbox, Input, Label, Static

from portfwd.engine.catalog import PortChoice
from portfwd.engine.model import ForwardSpec
from portfwd.errors import InputError
from portfwd.safetext import escape_controls
from portfwd.tui.ports import (
    DEFAULT_ADDRESSES,
    PortCheck,
    check_port_all,
    parse_addresses,
    public_addresses,
    suggest_port,
)


@dataclass(frozen=True)
class Target:
    """What the new forwards go to."""

    target: str  # svc/echo, pod/x ...
    namespace: str
    context: str
    kubeconfig: str | None = None
    protocol: str = "auto"


class LocalPortForm(Vertical):
    class Submitted(Message):
        def __init__(self, form: LocalPortForm, specs: list[ForwardSpec]) -> None:
            super().__init__()
            self.form = form
            self.specs = specs

        @property
        def control(self) -> LocalPortForm:
            return self.form

    class Cancelled(Message):
        def __init__(self, form: LocalPortForm) -> None:
            super().__init__()
            self.form = form

        @property
        def control(self) -> LocalPortForm:
            return self.form

    def __init__(
        self,
        target: Target,
        ports: Sequence[PortChoice],
        *,
        taken: Callable[[], dict[int, str]],
        id: str | None = None,
    ) -> None:
        super().__init__(id=id, classes="local-form")
        self.target = target
        self.ports = list(ports)
        self._taken = taken
        self._checks: dict[int, PortCheck] = {}
        self._checked_form: tuple[str, ...] = ()  # the form the checks were made for

    def compose(self) -> ComposeResult:
        for p in self.ports:
            name = f" ({p.name})" if p.name else ""
            with Horizontal(classes="local-row"):
                yield Label(
                    escape_controls(f"{self.target.target} port {p.port}{name} ← local port"),
                    markup=False,
                )
                yield Input(
                    "",
                    placeholder="finding…",
                    id=f"local-{p.port}",
                    compact=True,
                    classes="local-port",
                )
            yield Static("⏳ checking…", id=f"check-{p.port}", classes="check", markup=False)
        with Horizontal(classes="local-row"):
            yield Label("listen on (comma-separated)")
            yield Input(",".join(DEFAULT_ADDRESSES), id="local-address", compact=True)
        yield Static("", id="address-warning", classes="check", markup=False)
        yield Checkbox(
            "Reconnect automatically (follow the target, retry after failures)",
            value=True,
            id="local-reconnect",
        )
        with Horizontal(classes="buttons"):
            yield Button(
                "Start (enter)", variant="success", id="start", disabled=True, compact=True
            )
            yield Button("Back (esc)", id="back", compact=True)

    def on_mount(self) -> None:
        self._suggest()

    def addresses(self) -> tuple[str, ...]:
        return parse_addresses(self.query_one("#local-address", Input).value)

    @work(exclusive=True, group="local-suggest")
    async def _suggest(self) -> None:
        taken = dict(self._taken())
        addresses = self.addresses()
        chosen: dict[int, int] = {}
        for p in self.ports:
            local = await suggest_port(p.port, addresses, taken)
            chosen[p.port] = local
            if local:
                taken[local] = "this form"
        boxes = [self.query_one(f"#local-{p.port}", Input) for p in self.ports]
        if boxes:
            # Focus first: focusing is deferred, and keys typed once the suggestion shows
            # must reach this box, not the step before's.
            boxes[0].focus()
        for p, box in zip(self.ports, boxes, strict=True):
            box.value = str(chosen[p.port] or "")

    @on(Input.Changed)
    def _changed(self, event: Input.Changed) -> None:
        self._validate()
        public = public_addresses(self.addresses())
        warn = self.query_one("#address-warning", Static)
        warn.update(f"⚠ {', '.join(public)} is reachable from other machines" if public else "")

    @work(exclusive=True, group="local-validate")
    async def _validate(self) -> None:
        form = self._form()
        addresses = self.addresses()
        taken = dict(self._taken())
        checks: dict[int, PortCheck] = {}
        seen: dict[int, int] = {}
        for p, text in zip(self.ports, form[1:], strict=True):
            result = await check_port_all(text, addresses, taken, note_public=False)
            if result.ok:
                value = int(text)
                if value in seen:
                    result = PortCheck(False, f"{value} is already used for port {seen[value]}")
                seen[value] = p.port
            checks[p.port] = result
        self._checks = checks
        self._checked_form = form
        for port, result in checks.items():
            widget = self.query_one(f"#check-{port}", Static)
            widget.update(("✓ " if result.ok else "✖ ") + result.message)
            widget.set_class(not result.ok, "invalid")
        self.query_one("#start", Button).disabled = not self.ok

    def _form(self) -> tuple[str, ...]:
        boxes = (self.query_one(f"#local-{p.port}", Input).value for p in self.ports)
        return (",".join(self.addresses()), *boxes)

    @property
    def ok(self) -> bool:
        """Every port checked and fine, for what the form holds now: enter typed right after
        a key may arrive before that key's check has finished."""
        return (
            bool(self._checks)
            and self._checked_form == self._form()
            and all(self._checks.get(p.port, PortCheck(False, "")).ok for p in self.ports)
        )

    @on(Input.Submitted)
    @on(Button.Pressed, "#start")
    def start(self) -> None:
        if not self.ok:
            checked = self._checked_form == self._form()
            bad = [r.message for r in self._checks.values() if not r.ok and checked]
            self.notify(
                bad[0] if bad else "checking the local port…", severity="warning", markup=False
            )
            return
        reconnect = self.query_one("#local-reconnect", Checkbox).value
        target = self.target
        try:
            specs = [
                ForwardSpec(
                    target=target.target,
                    remote_port=p.port,
                    local_port=int(self.query_one(f"#local-{p.port}", Input).value),
                    namespace=target.namespace,
                    context=target.context,
                    kubeconfig=target.kubeconfig,
                    addresses=self.addresses(),
                    reconnect=reconnect,
                    protocol=target.protocol,
                )
                for p in self.ports
            ]
        except InputError as exc:  # e.g. a name from the API that no real cluster allows
            self.notify(str(exc), severity="error", markup=False)
            return
        self.post_message(self.Submitted(self, specs))

    @on(Button.Pressed, "#back")
    def _back(self) -> None:
        self.post_message(self.Cancelled(self))
