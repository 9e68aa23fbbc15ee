"""New forward: context → namespace → kind → resource → port(s) → local port → start.

Every list loads in a worker with a visible loading line and an error line (ctrl+r retries);
typing filters the list (fuzzy) and the arrows move in it, so the hands never leave the
keyboard. When the namespaces may not be listed (RBAC), the step turns into a text prompt.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.fuzzy import Matcher
from textual.widgets import Footer, Header, Input, OptionList, Static
from textual.widgets.option_list import Option

from portfwd.engine.catalog import (
    ContextChoice,
    ListForbidden,
    PortChoice,
    ResourceChoice,
)
from portfwd.engine.model import ForwardSpec
from portfwd.errors import PortfwdError
from portfwd.kube import kinds
from portfwd.safetext import escape_controls, escape_lines
from portfwd.tui.format import port_prompt
from portfwd.tui.screens.base import PortfwdScreen
from portfwd.tui.widgets.local_form import LocalPortForm, Target

log = logging.getLogger(__name__)

STEPS = ("context", "namespace", "kind", "resource", "port", "local")
STEP_TITLES = {
    "context": "Context",
    "namespace": "Namespace",
    "kind": "Kind",
    "resource": "Resource",
    "port": "Port(s)",
    "local": "Local port",
}


@dataclass(frozen=True)
class Item:
    key: str
    prompt: Text
    search: str
    value: Any
    disabled: bool = False


def _low_port_rule() -> str:
    """What the suggestion does with a port below 1024, for the user this process runs as."""
    if os.name == "posix" and os.geteuid() == 0:
        return " (below 1024 too: you are root)"
    return " and above 1024 (below: +8000, 80 -> 8080)"


_LOW_PORT_RULE = _low_port_rule()


class NewForwardScreen(PortfwdScreen[list[ForwardSpec] | None]):
    """Returns the specs to add (one per chosen port), or None when cancelled."""

    BINDINGS = [
        Binding("escape", "back", "Back"),
        Binding("down", "cursor_down", "Down", show=False, priority=True),
        Binding("up", "cursor_up", "Up", show=False, priority=True),
        Binding("pagedown", "page_down", "Page down", show=False),
        Binding("pageup", "page_up", "Page up", show=False),
        Binding("tab", "mark", "Mark port", priority=True),
        Binding("tab", "next_field", "Next field", show=False, priority=True),
        Binding("ctrl+r", "reload", "Reload"),
    ]

    def __init__(self, *, context: str | None = None, namespace: str | None = None) -> None:
        super().__init__(id="picker")
        self.step = "context"
        self.context: str = context or ""
        self.namespace: str = namespace or ""
        self.kind = ""
        self.resource = ""
        self.ports: list[PortChoice] = []
        self.marked: set[int] = set()
        self.state = "idle"  # idle | loading | error | forbidden | ready
        self._items: list[Item] = []
        self._contexts: list[ContextChoice] = []
        self._initial_context = context
        self._initial_namespace = namespace
        self._ready_status = ""
        self._what = ""  # what the step lists: "namespaces", "services" ...
        self._visible: list[Item] = []
        self._skip_single_port = False  # entering the port step from a resource (not back)
        self.skipped_port_step = False  # the local step came straight from the resource

    def compose(self) -> ComposeResult:
        yield Header()
        with Vertical(id="picker-body"):
            yield Static("", id="crumbs")
            yield Static("", id="step-title")
            yield Input(placeholder="type to filter", id="query")
            yield Static("", id="status", markup=False)
            yield OptionList(id="choices")
            yield VerticalScroll(id="local-step")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#local-step").display = False
        self._enter("context")

    # -- step machinery -----------------------------------------------------------------------

    def _crumbs(self) -> Text:
        """Text, not markup: context names come from the kubeconfig and may hold brackets."""
        values = {
            "context": self.context,
            "namespace": self.namespace,
            "kind": self.kind,
            "resource": self.resource,
            "port": ",".join(str(p.port) for p in self.ports),
        }
        done = STEPS[: STEPS.index(self.step)]
        parts = [(STEP_TITLES[step].lower(), values[step]) for step in done if values.get(step)]
        crumbs = Text("New forward:  ")
        if not parts:
            crumbs.append("start by choosing a context")
        for n, (title, value) in enumerate(parts):
            if n:
                crumbs.append("  \u203a  ")
            crumbs.append(f"{title} ")
            crumbs.append(escape_controls(value), style="bold")
        return crumbs

    def _enter(self, step: str) -> None:
        if step != "port":
            self._skip_single_port = False
        if step != "local":
            self.skipped_port_step = False
        self.step = step
        idx = STEPS.index(step) + 1
        self.query_one("#crumbs", Static).update(self._crumbs())
        self.query_one("#step-title", Static).update(
            Text.assemble(
                (f"{idx}/{len(STEPS)}  {STEP_TITLES[step]}", "bold"), "  ", self._step_hint(step)
            )
        )
        query = self.query_one("#query", Input)
        local = self.query_one("#local-step", VerticalScroll)
        choices = self.query_one("#choices", OptionList)
        is_local = step == "local"
        local.display = is_local
        choices.display = not is_local
        query.display = not is_local
        query.value = ""
        query.placeholder = "type to filter"
        self._items = []
        self._ready_status = ""
        choices.clear_options()
        if is_local:
            self._build_local_step()
            return
        query.focus()
        loaders: dict[str, Callable[[], Awaitable[list[Item]]]] = {
            "context": self._load_contexts,
            "namespace": self._load_namespaces,
            "kind": self._load_kinds,
            "resource": self._load_resources,
            "port": self._load_ports,
        }
        self._load(step, loaders[step])

    def _step_hint(self, step: str) -> str:
        return escape_controls(
            {
                "context": "which cluster/user (from your kubeconfig)",
                "namespace": f"in context {self.context}",
                "kind": "what to forward to",
                "resource": f"{self.kind}s in {self.namespace}",
                "port": "enter picks one; tab marks several (like fzf)",
                "local": "where to listen on this machine",
            }[step]
        )

    def _set_status(self, text: str, kind: str = "") -> None:
        """The step's status line; it quotes the API's error text, so: no raw controls."""
        status = self.query_one("#status", Static)
        status.update(escape_lines(text))
        status.set_classes(kind or "")

    @work(exclusive=True, group="picker-load")
    async def _load(self, step: str, loader: Callable[[], Awaitable[list[Item]]]) -> None:
        self.state = "loading"
        what = {"context": "contexts", "kind": "kinds", "port": "ports"}.get(step, f"{step}s")
        if step == "resource":
            what = f"{self.kind}s"
        self._set_status(f"⏳ Loading {what}…", "loading")
        try:
            items = await loader()
        except ListForbidden as exc:
            if step == "namespace":
                self._namespace_fallback(str(exc))
                return
            self._load_failed(what, str(exc))
            return
        except PortfwdError as exc:
            self._load_failed(what, str(exc))
            return
        except Exception as exc:  # a bug: shown on the step (never a crash) and logged
            log.exception("listing %s failed", what)
            self._load_failed(what, f"unexpected {type(exc).__name__}: {exc}")
            return
        if self.step != step:
            return
        if step == "port" and self._skip_single_port and len(items) == 1 and not items[0].disabled:
            # One TCP port: nothing to choose (as the browse view's dialog). Esc on the
            # local step comes back here, to the list, to type another port.
            self.ports = [items[0].value]
            self.skipped_port_step = True
            self._enter("local")
            return
        self.state = "ready"
        self._items = items
        if not items:
            self._set_status(f"No {what} here. Esc goes back.", "empty")
        else:
            enabled = sum(1 for i in items if not i.disabled)
            self._what = what
            self._ready_status = f"{enabled} of {len(items)} {what} selectable"
            self._set_status(self._ready_status, "")
        self._refilter(self._initial_highlight(step))

    def _load_failed(self, what: str, message: str) -> None:
        self.state = "error"
        self._set_status(
            f"✖ Cannot load {what}: {message}\n  ctrl+r retries · esc goes back", "error"
        )

    def _namespace_fallback(self, message: str) -> None:
        self.state = "forbidden"
        suggestion = self._initial_namespace or next(
            (c.namespace for c in self._contexts if c.name == self.context and c.namespace), ""
        )
        self._set_status(
            f"⚠ You may not list namespaces in context {self.context} ({message}).\n"
            "  Type the namespace and press enter.",
            "warning",
        )
        query = self.query_one("#query", Input)
        query.placeholder = "namespace name"
        self._items = []
        if suggestion:
            self._items = [self._namespace_item(suggestion, "context default")]
        self._refilter(None)

    def _namespace_item(self, name: str, note: str = "") -> Item:
        prompt = Text(escape_controls(name))
        if note:
            prompt.append(f"  ({note})", style="dim")
        return Item(key=f"ns:{name}", prompt=prompt, search=name, value=name)

    def _initial_highlight(self, step: str) -> str | None:
        if step == "context":
            want = self.context or self._initial_context
            if want:
                return f"ctx:{want}"
            current = next((c for c in self._contexts if c.current), None)
            return f"ctx:{current.name}" if current else None
        if step == "namespace":
            want = self.namespace or self._initial_namespace
            if not want:
                want = next((c.namespace for c in self._contexts if c.name == self.context), "")
            return f"ns:{want}" if want else None
        if step == "kind":
            return f"kind:{self.kind}" if self.kind else None
        return None

    # -- loaders --------------------------------------------------------------------------------

    async def _load_contexts(self) -> list[Item]:
        self._contexts = await self.catalog.contexts()
        items = []
        for c in self._contexts:
            prompt = Text(escape_controls(c.name), style="bold" if c.current else "")
            detail = f"  cluster {c.cluster}" if c.cluster else ""
            if c.namespace:
                detail += f" · namespace {c.namespace}"
            prompt.append(escape_controls(detail), style="dim")
            if c.current:
                prompt.append("  ● current", style="green")
            items.append(Item(key=f"ctx:{c.name}", prompt=prompt, search=c.name, value=c.name))
        return items

    async def _load_namespaces(self) -> list[Item]:
        names = await self.catalog.namespaces(self.context)
        return [self._namespace_item(n) for n in names]

    async def _load_kinds(self) -> list[Item]:
        """The listed kinds; one not listed (rs) is offered when its name is typed."""
        return [self._kind_item(kind) for kind in kinds.LISTED]

    @staticmethod
    def _kind_item(kind: kinds.Kind) -> Item:
        prompt = Text(f"{kind.name:<12}", style="bold")
        prompt.append(f" {kind.short:<7}", style="cyan")
        prompt.append(kind.picks, style="dim")
        return Item(key=f"kind:{kind.name}", prompt=prompt, search=kind.name, value=kind.name)

    async def _load_resources(self) -> list[Item]:
        found = await self.catalog.resources(self.context, self.namespace, self.kind)
        widths = (
            max((len(escape_controls(r.name)) for r in found), default=10),
            max((len(escape_controls(r.status)) for r in found), default=0),
            max((len(escape_controls(r.ready)) for r in found), default=0),
        )
        return [self._resource_item(r, widths) for r in found]

    def _resource_item(self, r: ResourceChoice, widths: tuple[int, int, int]) -> Item:
        # Names, states and details are the API's: escaped (before padding, so the columns
        # line up whatever an escape adds). Each column is as wide as its widest value.
        name, status, ready = (escape_controls(v) for v in (r.name, r.status, r.ready))
        prompt = Text(f"{name:<{widths[0]}}  ", style="bold")
        prompt.append(f"{status:<{widths[1]}}  ", style="green" if r.healthy else "yellow")
        prompt.append(f"{ready:<{widths[2]}}  ", style="" if r.healthy else "yellow")
        if r.detail:
            prompt.append(escape_controls(r.detail), style="dim")
        if r.disabled_reason:  # e.g. a Service with UDP ports only
            prompt.append(f"  ✖ {escape_controls(r.disabled_reason)}", style="red")
        return Item(
            key=f"res:{r.name}",
            prompt=prompt,
            search=r.name,
            value=r.name,
            disabled=bool(r.disabled_reason),
        )

    async def _load_ports(self) -> list[Item]:
        found = await self.catalog.ports(self.context, self.namespace, self.kind, self.resource)
        self.marked.clear()
        return [self._port_item(p) for p in found]

    def _port_item(self, p: PortChoice, marked: bool = False) -> Item:
        reason = p.disabled_reason
        prompt = port_prompt(p.port, p.name, p.protocol, p.detail, marked=marked, disabled=reason)
        search = f"{p.port} {p.name} {p.protocol}"
        return Item(
            key=f"port:{p.port}", prompt=prompt, search=search, value=p, disabled=bool(reason)
        )

    # -- filtering ------------------------------------------------------------------------------

    def _refilter(self, highlight: str | None = None) -> None:
        choices = self.query_one("#choices", OptionList)
        text = self.query_one("#query", Input).value.strip()
        items = list(self._items)
        if self.state == "forbidden" and text and all(i.value != text for i in items):
            items.insert(0, self._namespace_item(text, "typed"))
        if text and self.state != "forbidden":
            matcher = Matcher(text)
            scored = [(matcher.match(i.search), n, i) for n, i in enumerate(items)]
            items = [i for score, n, i in sorted(scored, key=lambda t: (-t[0], t[1])) if score > 0]
        # A kind typed as kubectl spells it (`rs`, `deploy.apps`) comes first, listed or not.
        typed_kind = kinds.target_kind(text) if self.step == "kind" and text else None
        if typed_kind is not None and self.state == "ready":
            items = [self._kind_item(typed_kind), *(i for i in items if i.value != typed_kind.name)]
        # A pod port need not be declared in the spec (kubectl forwards it anyway); a Service
        # port must exist on the Service, so services only offer theirs.
        typed_port = int(text) if text.isdigit() and 1 <= int(text) <= 65535 else 0
        if (
            typed_port
            and self.step == "port"
            and self.state == "ready"
            and self.kind != "service"
            and all(i.value.port != typed_port for i in items)
        ):
            extra = PortChoice(typed_port, "", "TCP", "not declared in the spec")
            items.insert(0, self._port_item(extra, typed_port in self.marked))
        current = choices.highlighted_option.id if choices.highlighted_option else None
        choices.clear_options()
        choices.add_options([Option(i.prompt, id=i.key, disabled=i.disabled) for i in items])
        self._visible = items
        target = highlight or (current if text == "" else None)
        index = next((n for n, i in enumerate(items) if i.key == target), None)
        if index is None:
            index = next((n for n, i in enumerate(items) if not i.disabled), None)
        if index is not None:
            choices.highlighted = index
        if self.state == "ready" and self.step != "port":
            if text and not items:
                self._set_status(f"Nothing matches “{text}”.", "empty")
            elif text:
                enabled = sum(1 for i in items if not i.disabled)
                self._set_status(f"{enabled} of {len(self._items)} {self._what} match “{text}”", "")
            elif self._ready_status:
                self._set_status(self._ready_status, "")

    @on(Input.Changed, "#query")
    def _query_changed(self, event: Input.Changed) -> None:
        if self.state in ("ready", "forbidden"):
            self._refilter()

    @on(Input.Submitted, "#query")
    def _query_submitted(self, event: Input.Submitted) -> None:
        self._choose_highlighted()

    @on(OptionList.OptionSelected, "#choices")
    def _option_selected(self, event: OptionList.OptionSelected) -> None:
        self._choose(event.option.id)

    def _choose_highlighted(self) -> None:
        choices = self.query_one("#choices", OptionList)
        option = choices.highlighted_option
        if option is None:
            if self.state == "loading":
                self.notify("still loading…", timeout=2)
            return
        self._choose(option.id)

    def _choose(self, key: str | None) -> None:
        item = next((i for i in self._visible if i.key == key), None)
        if item is None or item.disabled:
            return
        if self.step == "context":
            if item.value != self.context:
                self.namespace = ""
            self.context = item.value
            self._enter("namespace")
        elif self.step == "namespace":
            self.namespace = item.value
            self._enter("kind")
        elif self.step == "kind":
            self.kind = item.value
            self._enter("resource")
        elif self.step == "resource":
            self.resource = item.value
            self._skip_single_port = True
            self._enter("port")
        elif self.step == "port":
            marked = [i.value for i in self._items if i.value.port in self.marked]
            self.ports = marked or [item.value]
            self._enter("local")

    # -- key actions --------------------------------------------------------------------------

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "mark":
            return self.step == "port"
        if action == "next_field":
            return self.step == "local"
        if action in ("cursor_down", "cursor_up"):
            return self.step != "local"
        return True

    def action_cursor_down(self) -> None:
        self.query_one("#choices", OptionList).action_cursor_down()

    def action_cursor_up(self) -> None:
        self.query_one("#choices", OptionList).action_cursor_up()

    def action_page_down(self) -> None:
        self.query_one("#choices", OptionList).action_page_down()  # type: ignore[no-untyped-call]

    def action_page_up(self) -> None:
        self.query_one("#choices", OptionList).action_page_up()  # type: ignore[no-untyped-call]

    def action_next_field(self) -> None:
        """tab on the local step: through the form (ports, address, reconnect, buttons)."""
        self.focus_next()

    def action_mark(self) -> None:
        choices = self.query_one("#choices", OptionList)
        option = choices.highlighted_option
        item = next((i for i in self._visible if option and i.key == option.id), None)
        if item is None or item.disabled:
            return
        port = item.value.port
        self.marked.symmetric_difference_update({port})
        highlighted = choices.highlighted
        if all(i.key != item.key for i in self._items):
            self._items.append(item)  # a typed, undeclared port joins the list once marked
        self._items = [
            self._port_item(i.value, i.value.port in self.marked) if i.key == item.key else i
            for i in self._items
        ]
        self._refilter(item.key)
        if highlighted is not None:
            choices.highlighted = highlighted
        choices.action_cursor_down()  # like fzf: mark, then on to the next one
        self._set_status(f"{len(self.marked)} port(s) marked; enter continues", "")

    def action_reload(self) -> None:
        if self.step != "local":
            self._enter(self.step)

    def action_back(self) -> None:
        idx = STEPS.index(self.step)
        if idx == 0:
            self.dismiss(None)
            return
        previous = STEPS[idx - 1]
        if previous == "port":
            self.ports = []
        self._skip_single_port = False
        self._enter(previous)

    # -- local step ---------------------------------------------------------------------------

    @work(exclusive=True, group="picker-local")
    async def _build_local_step(self) -> None:
        box = self.query_one("#local-step", VerticalScroll)
        await box.remove_children()
        target = Target(
            target=kinds.by_name(self.kind).label(self.resource),
            namespace=self.namespace,
            context=self.context,
            kubeconfig=self.papp.spec_kubeconfig,
            protocol=self.papp.protocol,
        )
        await box.mount(LocalPortForm(target, self.ports, taken=self.papp.taken_ports))
        self._set_status(
            f"Forward {target.target} in {self.namespace} ({self.context}). The local port "
            f"is the remote one when free{_LOW_PORT_RULE}, else the next free one.",
            "",
        )

    @on(LocalPortForm.Submitted)
    def _local_submitted(self, event: LocalPortForm.Submitted) -> None:
        self.dismiss(event.specs)

    @on(LocalPortForm.Cancelled)
    def _local_cancelled(self, event: LocalPortForm.Cancelled) -> None:
        self.action_back()
