"""The resources view (`b`): the namespace's services, pods, deployments and statefulsets
(the listed kinds), live from watches, like k9s's resource lists; `f` (or `F`, k9s's key) or
enter forwards the selected one, `N` every Service listed (the whole namespace when no filter
narrows it) as `portfwd ns` does (after a confirmation naming how many;
`reach.namespace_specs`).

Rows carry the object's readiness, status, ports and age, and the forwards already running
to it in the context shown (their state and local port). A watch that fails says so on the
status line and is retried; the list keeps its last known rows meanwhile, marked as such.
"""

from __future__ import annotations

import contextlib
import logging

from rich.text import Text
from textual import events, on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.message import Message
from textual.timer import Timer
from textual.widgets import Footer, Header, Input, Static

from portfwd.engine.browse import KIND_ORDER, LiveResources, ResourceRow, ResourceView
from portfwd.engine.model import ForwardSnapshot, ForwardSpec
from portfwd.errors import PortfwdError
from portfwd.humanize import human_duration
from portfwd.kube import kinds
from portfwd.safetext import escape_controls
from portfwd.tui.columns import Column
from portfwd.tui.format import STATUS_STYLE
from portfwd.tui.screens.base import PortfwdScreen
from portfwd.tui.widgets.fitted_table import FittedTable

log = logging.getLogger(__name__)

# 0 shows every kind, 1.. one listed kind each (services, pods, ...: `kube.kinds.LISTED`).
KIND_KEYS = {"0": "", **{str(n): k.name for n, k in enumerate(kinds.LISTED, 1)}}
KIND_TITLES = {"": "all", **{k.name: k.plural for k in kinds.LISTED}}
KIND_TABS = {"": "all", **{k.name: k.short for k in kinds.LISTED}}

RESOURCE_COLUMNS: tuple[Column, ...] = (
    Column("kind", "Kind", lambda r, now: r.kind, 0),
    # Pods of one owner differ at the end (`web-7d9f8c6b5-x2k4p`): cut in the middle, and
    # wide enough that the hash and suffix stay (issue 18).
    Column("name", "Name", lambda r, now: r.name, 1, min_width=20, cut="middle"),
    Column("ready", "Ready", lambda r, now: r.ready, 2),
    Column("status", "Status", lambda r, now: r.status, 4, min_width=8),
    Column("restarts", "Restarts", lambda r, now: r.restarts, 7),
    Column("age", "Age", lambda r, now: r.created or 0, 6),
    Column("forwards", "Fwd", lambda r, now: 0, 3),  # forwards running to it: state, port
    Column("ports", "Ports", lambda r, now: r.ports, 5, min_width=8, flex=True),
)


def ports_text(row: ResourceRow) -> str:
    """`tcp:80, https:443, dns:53/UDP`: each port's name and number."""
    parts = []
    for p in row.ports:
        text = f"{p.name}:{p.port}" if p.name else str(p.port)
        if p.protocol.upper() != "TCP":
            text += f"/{p.protocol}"
        parts.append(text)
    return escape_controls(", ".join(parts))


def in_view(snap: ForwardSnapshot, context: str, namespace: str) -> bool:
    """The forward runs in this context and namespace: a `svc/echo` of another cluster is
    another object. A forward that names neither runs in the default ones."""
    ctx = snap.context or snap.spec.context or ""
    ns = snap.namespace or snap.spec.namespace or namespace
    return ns == namespace and (not context or not ctx or ctx == context)


def forwards_of(
    row: ResourceRow, snapshots: list[ForwardSnapshot], namespace: str, context: str = ""
) -> Text:
    """The forwards that target this object (in this context): state symbol, local port."""
    target = kinds.by_name(row.kind).label(row.name)
    text = Text()
    for snap in snapshots:
        same = snap.spec.target == target or (row.kind == "pod" and snap.spec.target == row.name)
        if same and in_view(snap, context, namespace):
            symbol, style = STATUS_STYLE[snap.state]
            if text:
                text.append(" ")
            text.append(f"{symbol} ", style=style)
            text.append(str(snap.local_port or "auto"))
    return text


def matches(row: ResourceRow, query: str) -> bool:
    hay = " ".join((row.kind, KIND_TABS[row.kind], row.name, row.status, ports_text(row)))
    return all(word in hay.lower() for word in query.lower().split())


class ResourceTable(FittedTable):
    BINDINGS = [Binding("enter", "forward", "Forward", show=False)]

    class ForwardRequested(Message):
        def __init__(self, table: ResourceTable, key: str) -> None:
            super().__init__()
            self.table = table
            self.key = key

        @property
        def control(self) -> ResourceTable:
            return self.table

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(RESOURCE_COLUMNS, id=id)

    def action_forward(self) -> None:
        if self.selected_key is not None:
            self.post_message(self.ForwardRequested(self, self.selected_key))

    def on_click(self, event: events.Click) -> None:
        row = event.style.meta.get("row", -1)
        key = self.key_at(row) if isinstance(row, int) else None
        if event.chain == 2 and key is not None:
            self.post_message(self.ForwardRequested(self, key))


class ResourcesScreen(PortfwdScreen[None]):
    BINDINGS = [
        Binding("f", "forward", "Forward"),
        Binding("F", "forward", "Forward", show=False),  # k9s's port-forward key (shift-f)
        Binding("N", "forward_namespace", "Forward all svc"),
        Binding("slash", "filter", "Filter"),
        Binding("escape", "back", "Back"),
        *(
            Binding(key, f"kind('{key}')", KIND_TITLES[kind].capitalize(), show=False)
            for key, kind in KIND_KEYS.items()
        ),
        Binding("ctrl+r", "rewatch", "Watch again", show=False),
    ]

    def __init__(self, context: str, namespace: str | None) -> None:
        super().__init__(id="resources-screen")
        self.context = context
        self.namespace = namespace or ""
        self.kind = ""  # "" = every kind
        self.view = ResourceView(loading=frozenset(KIND_ORDER))
        self.live: LiveResources | None = None
        self.failed = ""  # why the watch could not start at all
        self._ticker: Timer | None = None

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static("", id="res-title")
        yield Input(placeholder="filter: words to match (esc clears)", id="res-filter")
        yield ResourceTable(id="resources")
        yield Static("", id="res-status")
        yield Footer(compact=True, show_command_palette=False)

    @property
    def table(self) -> ResourceTable:
        return self.query_one(ResourceTable)

    @property
    def shown_context(self) -> str:
        """The context listed here ("" = the kubeconfig's current one, as the app names it)."""
        return self.context or self.papp.context_name

    def on_mount(self) -> None:
        self.query_one("#res-filter", Input).display = False
        self._show_title()
        self._watch()
        self._ticker = self.set_interval(1.0, self._tick)
        self.table.focus()

    # -- the watch ----------------------------------------------------------------------------

    @work(exclusive=True, group="resources-watch")
    async def _watch(self) -> None:
        catalog = self.catalog
        try:
            if not self.namespace:
                contexts = await catalog.contexts()
                chosen = next(
                    (
                        c
                        for c in contexts
                        if c.name == self.context or (not self.context and c.current)
                    ),
                    None,
                )
                self.namespace = (chosen.namespace if chosen else "") or "default"
                self._show_title()
            self.live = await catalog.live_resources(self.context, self.namespace)
        except PortfwdError as exc:
            self.failed = str(exc)
            self._show_status()
            return
        async with contextlib.aclosing(self.live.views()) as views:
            async for view in views:
                self.view = view
                self._show_rows()
                self._show_status()

    def action_rewatch(self) -> None:
        if self.live is not None:
            self.live.retry_now()
        elif self.failed:
            self.failed = ""
            self._watch()

    # -- rendering ----------------------------------------------------------------------------

    def _show_title(self) -> None:
        title = Text("Resources in ")
        title.append(escape_controls(self.namespace or "…"), style="bold")
        title.append(f" ({escape_controls(self.context or 'current context')})  ")
        for key, kind in KIND_KEYS.items():
            label = f" {key} {KIND_TABS[kind]} "
            title.append(label, style="reverse bold" if kind == self.kind else "dim")
        self.query_one("#res-title", Static).update(title)

    def _rows(self) -> list[ResourceRow]:
        query = self.query_one("#res-filter", Input).value
        return [
            r
            for r in self.view.rows
            if (not self.kind or r.kind == self.kind) and (not query.strip() or matches(r, query))
        ]

    def _cells(self, row: ResourceRow, snapshots: list[ForwardSnapshot]) -> dict[str, Text]:
        now = self.papp.clock()
        age = human_duration(now - row.created) if row.created else "?"
        style = "" if row.healthy else "yellow"
        return {
            "kind": Text(KIND_TABS[row.kind], style="cyan"),
            "name": Text(escape_controls(row.name), style="bold"),
            "ready": Text(escape_controls(row.ready), style=style),
            "status": Text(escape_controls(row.status), style="green" if row.healthy else style),
            "restarts": Text(str(row.restarts) if row.restarts else ""),
            "age": Text(age),
            "forwards": forwards_of(row, snapshots, self.namespace, self.shown_context),
            "ports": Text(ports_text(row)),
        }

    def _show_rows(self) -> None:
        snapshots = self.engine.snapshot()
        self.table.update_rows((r.key, self._cells(r, snapshots)) for r in self._rows())

    def _show_status(self) -> None:
        status = self.query_one("#res-status", Static)
        view = self.view
        if self.failed:
            status.update(Text(f"✖ cannot watch: {escape_controls(self.failed)}", style="red"))
            return
        text = Text()
        shown = len(self._rows())
        if view.loading:
            loading = ", ".join(KIND_TITLES[k] for k in KIND_ORDER if k in view.loading)
            text.append(f"⏳ listing {loading}…  ", style="yellow")
        else:
            text.append("● live  ", style="green")
        text.append(f"{shown} of {len(view.rows)} shown")
        if self.kind:
            text.append(f" ({KIND_TITLES[self.kind]}; 0 shows all)", style="dim")
        now = self.papp.clock()
        for kind, message in view.errors.items():
            text.append("\n")
            text.append(f"✖ {escape_controls(message)}", style="red")
            retry = view.retry_at.get(kind)
            if retry is not None:
                text.append(f" · retrying in {human_duration(max(0.0, retry - now))}")
                text.append(" (ctrl+r: now); the rows shown are the last known", style="dim")
        status.update(text)

    def _tick(self) -> None:
        """Ages, retry countdowns and the forwards' markers (they change on the dashboard)."""
        self._show_rows()
        self._show_status()

    # -- actions ------------------------------------------------------------------------------

    def action_kind(self, key: str) -> None:
        self.kind = KIND_KEYS[key]
        self._show_title()
        self._show_rows()
        self._show_status()

    def action_filter(self) -> None:
        box = self.query_one("#res-filter", Input)
        box.display = True
        box.focus()

    @on(Input.Changed, "#res-filter")
    def _filter_changed(self) -> None:
        self._show_rows()
        self._show_status()

    @on(Input.Submitted, "#res-filter")
    def _filter_done(self, event: Input.Submitted) -> None:
        if not event.value:
            event.input.display = False
        self.table.focus()

    def action_back(self) -> None:
        box = self.query_one("#res-filter", Input)
        if box.display or box.value:
            box.value = ""
            box.display = False
            self.table.focus()
            return
        self.dismiss(None)

    def action_forward(self) -> None:
        key = self.table.selected_key
        if key is not None:
            self._forward(key)

    @on(ResourceTable.ForwardRequested)
    def _forward_requested(self, event: ResourceTable.ForwardRequested) -> None:
        self._forward(event.key)

    def _forward(self, key: str) -> None:
        row = next((r for r in self.view.rows if r.key == key), None)
        if row is None:
            return
        from portfwd.tui.screens.forward_dialog import ForwardDialog

        def started(specs: list[ForwardSpec] | None) -> None:
            if specs:
                self.papp.add_forwards(specs)
                self.notify(
                    f"starting {specs[0].target} "
                    + ", ".join(f"{s.local_port}→{s.remote_port}" for s in specs),
                    timeout=4,
                )

        self.app.push_screen(
            ForwardDialog(row, context=self.context, namespace=self.namespace), started
        )

    # -- the whole namespace (`portfwd ns`) -------------------------------------------------

    def action_forward_namespace(self) -> None:
        from portfwd.reach.namespace_specs import forwardable
        from portfwd.tui.screens.dialogs import ConfirmScreen

        if self.view.loading or not self.namespace:
            self.notify("the services are still being listed; try again in a moment", timeout=4)
            return
        # A filter narrows it to the Services listed; without one, the whole namespace.
        filtered = bool(self.query_one("#res-filter", Input).value.strip())
        rows = self._rows() if filtered else self.view.rows
        services = [r for r in forwardable(rows) if not self._forwarded(r)]
        which = "listed Service" if filtered else f"Service of {self.namespace}"
        if not services:
            self.notify(
                f"no {which} left to forward (none with pods and a TCP "
                "port, or all forwarded already)",
                timeout=5,
            )
            return
        ports = sum(1 for r in services for p in r.ports if p.protocol.upper() == "TCP")
        what = (
            f"the {len(services)} listed Service{'' if len(services) == 1 else 's'}"
            if filtered
            else f"all {len(services)} Services of namespace {self.namespace}"
        )
        question = (
            f"Forward {what} ({ports} ports), as `portfwd ns` does?\n\n"
            "Each on its own loopback address and its native ports, connections spread over "
            "its Ready pods. Services created later are not added."
        )

        def answered(yes: bool | None) -> None:
            if yes:
                self._forward_namespace(services)

        self.app.push_screen(ConfirmScreen(question, confirm_label="Forward all"), answered)

    def _forwarded(self, row: ResourceRow) -> bool:
        """A forward of this Service already runs (to any of its ports)."""
        target = f"svc/{row.name}"
        return any(
            s.spec.target == target and in_view(s, self.shown_context, self.namespace)
            for s in self.engine.snapshot()
        )

    @work(group="resources-namespace")
    async def _forward_namespace(self, services: list[ResourceRow]) -> None:
        import asyncio

        from portfwd.reach.loopback import (
            AddressTable,
            many_loopback_addresses,
            unprivileged_port_start,
        )
        from portfwd.reach.namespace_specs import namespace_specs

        def build() -> list[ForwardSpec]:  # reads and writes the address table's file
            table = AddressTable()
            specs = namespace_specs(
                services,
                context=self.context or self.papp.context_name or "",
                namespace=self.namespace,
                table=table,
                port_start=unprivileged_port_start(),
                many_addresses=many_loopback_addresses(),
                spec_context=self.context or None,
                kubeconfig=self.papp.spec_kubeconfig,
            )
            table.save()
            return specs

        specs = await asyncio.to_thread(build)
        self.papp.add_forwards(specs)
        self.notify(
            f"forwarding {len(services)} Services of {self.namespace} ({len(specs)} ports)",
            timeout=4,
        )
