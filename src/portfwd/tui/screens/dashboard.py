"""The main screen: every forward, its state and traffic, and the keys that act on them."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.timer import Timer
from textual.widgets import Header, Input, Static

from portfwd.engine.model import ForwardSnapshot, ForwardSpec, ForwardState, ForwardStats
from portfwd.engine.present import kubectl_command
from portfwd.errors import PortfwdError
from portfwd.tui.clipboard import copy_text
from portfwd.tui.format import context_text, forward_label, reason_text, url_for
from portfwd.tui.history import History
from portfwd.tui.screens.base import PortfwdScreen
from portfwd.tui.widgets.detail_pane import Detail, DetailPane
from portfwd.tui.widgets.forward_table import ForwardTable
from portfwd.tui.widgets.key_bar import DASHBOARD_KEYS, KeyBar
from portfwd.tui.widgets.traffic_plot import totals_text

log = logging.getLogger(__name__)

EMPTY_TEXT = (
    "[b]No forwards yet.[/b]\n\n"
    "Press [b reverse] n [/] to add one: pick a context, namespace, kind, resource and port.\n"
    "Press [b reverse] ? [/] for every key, [b reverse] ctrl+p [/] for the command palette."
)

_STOPPED = (ForwardState.STOPPED, ForwardState.ERROR)


class DashboardScreen(PortfwdScreen[None]):
    # The key bar (widgets/key_bar.py) shows what fits the width; `?` lists every key.
    BINDINGS = [
        Binding("n", "new_forward", "New"),
        Binding("b", "resources", "Browse"),
        Binding("space", "start_stop", "Start/Stop"),
        Binding("r", "restart", "Restart", show=False),
        Binding("d", "delete", "Delete", show=False),
        Binding("e", "edit", "Edit", show=False),
        Binding("R", "rename", "Rename", show=False),
        Binding("a", "toggle_reconnect", "Auto-reconnect on/off", show=False),
        Binding("z", "toggle_lazy", "Lazy on/off", show=False),
        Binding("H", "toggle_http_log", "HTTP log on/off", show=False),
        Binding("h", "http_log", "HTTP requests", show=False),
        Binding("t", "toggle_pod_log", "Pod log tail", show=False),
        Binding("c", "pod_log_container", "Pod log: next container", show=False),
        Binding("l", "logs", "Logs"),
        Binding("i", "toggle_detail", "Details"),
        Binding("L", "all_logs", "All logs", show=False),
        Binding("y", "copy_command", "Copy cmd", show=False),
        Binding("o", "open_browser", "Open", show=False),
        Binding("slash", "filter", "Filter"),
        Binding("escape", "clear_filter", "Clear filter", show=False),
    ]

    def __init__(self) -> None:
        super().__init__(id="dashboard")
        self._ticker: Timer | None = None
        self._table: ForwardTable | None = None  # set while mounted
        self.history = History()
        self._pod_nodes: dict[tuple[str, str, str, str], str] = {}  # (kubeconfig, ctx, ns, pod)

    def compose(self) -> ComposeResult:
        yield Header()
        with Vertical(id="body"):
            yield Input(placeholder="filter: words to match (Esc clears)", id="filter")
            yield ForwardTable(clock=self.papp.clock, id="forwards")
            yield Static(EMPTY_TEXT, id="empty")
            yield DetailPane(id="detail")
        yield KeyBar(DASHBOARD_KEYS, id="keys")  # the most needed keys that fit; `?`: all

    @property
    def table(self) -> ForwardTable:
        if self._table is None:
            raise RuntimeError("the dashboard is not mounted")
        return self._table

    @property
    def live(self) -> bool:
        """False before mount and after unmount (the app is exiting): events are ignored."""
        return self._table is not None

    @property
    def detail(self) -> DetailPane:
        return self.query_one(DetailPane)

    def on_mount(self) -> None:
        self._table = self.query_one(ForwardTable)
        self._table.default_context = self.papp.context_name
        self.query_one("#filter", Input).display = False
        self._update_empty()
        self._update_header()

    def _update_header(self) -> None:
        """The app's header names the default context; with none (no kubeconfig), it names
        the contexts the forwards run in, so it never says "no context" over forwards that
        run fine with a kubeconfig of their own. Then the totals of every forward: the rate
        each way and the connections open (redrawn only when the text changes)."""
        if not self.live:
            return
        snaps = self.table.snapshots.values()
        if self.papp.context_name:
            where = self.papp.sub_title
        else:
            contexts = sorted({c for s in snaps if (c := context_text(s))})
            where = "no default context" + (
                f" · forwards in {', '.join(contexts)}" if contexts else ""
            )
        totals = totals_text((s.stats for s in snaps), self.papp.clock())
        self.sub_title = f"{where} · {totals}"

    # -- 1 s tick only while this screen is showing -----------------------------------------

    @property
    def ticking(self) -> bool:
        """The uptime/rate tick runs: only while the dashboard is the screen on top."""
        return self._ticker is not None

    def on_screen_suspend(self) -> None:
        if self._ticker is not None:
            self._ticker.stop()
            self._ticker = None

    def on_screen_resume(self) -> None:
        if self._ticker is None:
            self._ticker = self.set_interval(1.0, self._tick)
        self.table.focus()
        self._load_groups()  # at the start, and back from the profiles view (it may save)

    @work(group="groups", exclusive=True)
    async def _load_groups(self) -> None:
        """The Group column from the profiles file (read in a thread: ruamel is slow)."""
        from portfwd.store.profiles import default_profiles_file, load_profiles
        from portfwd.tui.grouping import group_index

        app = self.papp
        try:
            loaded = await asyncio.to_thread(load_profiles, default_profiles_file())
        except (PortfwdError, OSError):
            return  # the profiles view says what is wrong with the file
        index = group_index(
            loaded,
            kubeconfig=app.spec_kubeconfig,
            context=app.context_name or None,
            namespace=app.default_namespace,
        )
        if self.live:
            self.table.set_groups(index)

    def on_unmount(self) -> None:
        self._table = None

    def _tick(self) -> None:
        if self.live:
            self.table.tick()
            self._update_header()
            fid = self.table.selected_id
            snap = self.table.snapshots.get(fid) if fid else None
            if snap is not None and (snap.next_retry_at is not None or self.detail.expanded):
                self._update_detail()  # its countdown; connection ages, rates

    # -- fed by the app's engine worker -----------------------------------------------------

    def set_all(self, snapshots: list[ForwardSnapshot]) -> None:
        if not self.live:
            return
        now = self.papp.clock()
        for snap in snapshots:
            self.history.observe(snap, now)
        self.table.set_all(snapshots)
        self._update_empty()
        self._update_detail()
        self._update_header()

    def upsert(self, snap: ForwardSnapshot) -> None:
        if not self.live:
            return
        self.history.observe(snap, self.papp.clock())
        self.table.upsert(snap)
        self._update_empty()
        if snap.id == self.table.selected_id:
            self._update_detail()
        self._update_header()

    def remove_forward(self, fid: str) -> None:
        if not self.live:
            return
        self.history.forget(fid)
        self.table.remove_forward(fid)
        self._update_empty()
        self._update_detail()
        self._update_header()

    def logs_arrived(self, forward_ids: set[str | None]) -> None:
        """New log lines: the unfolded detail pane shows the selected forward's latest."""
        if self.live and self.detail.expanded and self.table.selected_id in forward_ids:
            self._update_detail()

    def update_stats(self, fid: str, stats: ForwardStats) -> None:
        if not self.live:
            return
        self.table.update_stats(fid, stats)

    def set_notes(self, notes: dict[str, str]) -> None:
        if not self.live:
            return
        self.table.notes.update(notes)
        for fid in notes:
            snap = self.table.snapshots.get(fid)
            if snap is not None:
                self.table.upsert(snap)

    def select(self, fid: str) -> None:
        if not self.live:
            return
        table = self.table
        if fid in table.visible_ids():
            table.move_cursor(row=table.get_row_index(fid), animate=False)

    def _update_empty(self) -> None:
        empty = self.query_one("#empty", Static)
        table = self.table
        if not table.snapshots:
            empty.update(EMPTY_TEXT)
            empty.display = True
        elif not table.row_keys:  # not row_count: the rows wait for a layout to be drawn
            typed = reason_text(table.filter_text)
            empty.update(Text(f"No forward matches “{typed}”. Press Esc to clear the filter."))
            empty.display = True
        else:
            empty.display = False

    # -- selection helpers --------------------------------------------------------------------

    def _selected(self) -> ForwardSnapshot | None:
        fid = self.table.selected_id
        snap = self.table.snapshots.get(fid) if fid else None
        if snap is None:
            self.notify("No forward selected. Press n to add one.", severity="warning", timeout=3)
        return snap

    @work(group="engine-actions")
    async def _run_engine(self, what: str, call: Callable[[], Awaitable[Any]]) -> None:
        """One engine call off the key handler; its failure becomes a toast, not a crash."""
        try:
            await call()
        except PortfwdError as exc:
            self.notify(f"{what}: {exc}", severity="error", timeout=8, markup=False)
        except KeyError:
            self.notify(f"{what}: that forward no longer exists", severity="warning")
        except Exception as exc:  # an engine bug must not take the dashboard down
            if self.papp.quitting:
                return  # the engine is shutting down under this call
            log.exception("%s failed", what)
            self.notify(
                f"{what} failed unexpectedly: {exc!r}", severity="error", timeout=10, markup=False
            )

    # -- actions ----------------------------------------------------------------------------

    def action_new_forward(self) -> None:
        self.papp.open_picker()

    def action_start_stop(self) -> None:
        snap = self._selected()
        if snap is None:
            return
        engine = self.engine
        if snap.state in _STOPPED:
            self._run_engine(f"start {forward_label(snap)}", lambda: engine.start(snap.id))
        else:
            self._run_engine(f"stop {forward_label(snap)}", lambda: engine.stop(snap.id))

    def action_restart(self) -> None:
        snap = self._selected()
        if snap is not None:
            engine = self.engine
            self._run_engine(f"restart {forward_label(snap)}", lambda: engine.restart(snap.id))

    def action_delete(self) -> None:
        snap = self._selected()
        if snap is None:
            return
        engine = self.engine

        def delete(confirmed: bool | None) -> None:
            if confirmed:
                self._run_engine(f"delete {forward_label(snap)}", lambda: engine.remove(snap.id))

        if snap.state in _STOPPED:
            delete(True)
        else:
            from portfwd.tui.screens.dialogs import ConfirmScreen

            self.app.push_screen(
                ConfirmScreen(
                    f"Delete the {snap.state.value} forward {forward_label(snap)}?\n"
                    f"Its {snap.stats.connections_open} open connection(s) will be closed.",
                    confirm_label="Delete",
                ),
                delete,
            )

    def action_edit(self) -> None:
        snap = self._selected()
        if snap is None:
            return
        from portfwd.tui.screens.dialogs import EditScreen

        engine = self.engine

        def apply(spec: ForwardSpec | None) -> None:
            if spec is not None and spec != snap.spec:
                self._run_engine(
                    f"edit {forward_label(snap)}", lambda: engine.update(snap.id, spec)
                )

        self.app.push_screen(EditScreen(snap, taken=self.papp.taken_ports(exclude=snap.id)), apply)

    def action_rename(self) -> None:
        """A name for `portfwd stop NAME` and the profiles; the forward keeps running."""
        snap = self._selected()
        if snap is None:
            return
        from portfwd.tui.screens.rename import RenameScreen

        engine = self.engine

        def apply(name: str | None) -> None:
            now = self.table.snapshots.get(snap.id) if self.live else None
            if name is None or now is None or (name or None) == now.spec.name:
                return
            spec = replace(now.spec, name=name or None)
            self._run_engine(f"rename {forward_label(now)}", lambda: engine.update(now.id, spec))

        self.app.push_screen(RenameScreen(snap), apply)

    def action_toggle_reconnect(self) -> None:
        snap = self._selected()
        if snap is None:
            return
        engine = self.engine
        enabled = not snap.spec.reconnect
        word = "on" if enabled else "off"

        async def toggle() -> None:
            await engine.set_reconnect(snap.id, enabled)
            self.notify(f"auto-reconnect {word} for {snap.spec.target}", timeout=4, markup=False)

        self._run_engine(f"auto-reconnect {word} for {forward_label(snap)}", toggle)

    def action_toggle_lazy(self) -> None:
        """Lazy (◌ idle until a connection arrives) or not: the forward restarts with it."""
        snap = self._selected()
        if snap is None:
            return
        engine = self.engine
        spec = replace(snap.spec, lazy=not snap.spec.lazy)
        word = "on" if spec.lazy else "off"

        async def toggle() -> None:
            await engine.update(snap.id, spec)
            self.notify(f"lazy {word} for {snap.spec.target}", timeout=4, markup=False)

        self._run_engine(f"lazy {word} for {forward_label(snap)}", toggle)

    def action_toggle_http_log(self) -> None:
        snap = self._selected()
        if snap is None:
            return
        engine = self.engine
        enabled = not snap.spec.http_log
        word = "on" if enabled else "off"

        async def toggle() -> None:
            await engine.set_http_log(snap.id, enabled)
            more = " (new connections; h shows the requests)" if enabled else ""
            self.notify(f"HTTP log {word} for {snap.spec.target}{more}", timeout=4, markup=False)

        self._run_engine(f"HTTP log {word} for {forward_label(snap)}", toggle)

    def action_http_log(self) -> None:
        """The HTTP requests of the selected forward (`a` in the view shows every forward's)."""
        from portfwd.tui.screens.http_log import HttpLogScreen

        fid = self.table.selected_id if self.live else None
        self.app.push_screen(HttpLogScreen(fid if fid in self.table.snapshots else None))

    def action_toggle_pod_log(self) -> None:
        """The selected forward's pod log, tailed in the (unfolded) detail pane."""
        if self._selected() is None:
            return
        self.detail.toggle_pod_log()
        self._update_detail()

    def action_pod_log_container(self) -> None:
        """The pod log tail of the pod's next container (a pod with several)."""
        pane = self.detail
        if not (pane.expanded and pane.pod_log_on):
            self.notify("t shows the pod log first", severity="warning", timeout=3)
            return
        name = pane.pod_log.next_container()
        if name is None:
            self.notify("the pod has one container", timeout=3)
        else:
            self.notify(f"pod log: container {name}", timeout=3, markup=False)

    def action_logs(self) -> None:
        snap = self._selected()
        if snap is not None:
            self.papp.open_logs(snap.id)

    def action_all_logs(self) -> None:
        self.papp.open_logs(None)

    def action_copy_command(self) -> None:
        snap = self._selected()
        if snap is None:
            return
        self._copy(kubectl_command(snap.spec, snap))  # `:80` copies the port it bound

    @work(group="clipboard", exclusive=True)
    async def _copy(self, command: str) -> None:
        copied = await copy_text(command, self.app.copy_to_clipboard)
        self.notify(command, title=copied.message, timeout=8, markup=False)

    def action_open_browser(self) -> None:
        snap = self._selected()
        if snap is None:
            return
        url = url_for(snap)
        if url is None or snap.state not in (ForwardState.ACTIVE, ForwardState.DEGRADED):
            self.notify(
                f"{forward_label(snap)} is {snap.state.value}: start it first (space)",
                severity="warning",
                markup=False,
            )
            return
        self._open_url(url)

    @work(group="browser")
    async def _open_url(self, url: str) -> None:
        opener = self.papp.url_opener
        try:
            ok = await asyncio.to_thread(opener, url)
        except Exception as exc:  # webbrowser raises webbrowser.Error and OSErrors
            self.notify(f"cannot open {url}: {exc}", severity="error", markup=False)
            return
        if ok is False:
            self.notify(f"no browser found: open {url} yourself", severity="warning")
        else:
            self.notify(f"opened {url}", timeout=3)

    def action_cycle_sort(self) -> None:
        if self.live:
            self.table.action_cycle_sort()

    def action_reverse_sort(self) -> None:
        if self.live:
            self.table.action_reverse_sort()

    # -- filter -----------------------------------------------------------------------------

    def action_filter(self) -> None:
        box = self.query_one("#filter", Input)
        box.display = True
        box.focus()

    def action_clear_filter(self) -> None:
        box = self.query_one("#filter", Input)
        if box.display or self.table.filter_text:
            box.value = ""
            box.display = False
            self.table.focus()

    @on(Input.Changed, "#filter")
    def _filter_changed(self, event: Input.Changed) -> None:
        self.table.filter_text = event.value
        self.table.rebuild()
        self._update_empty()
        self._update_detail()  # the selection may have gone with the rows

    @on(Input.Submitted, "#filter")
    def _filter_done(self, event: Input.Submitted) -> None:
        if not event.value:
            event.input.display = False
        self.table.focus()

    @on(ForwardTable.LogsRequested, "#forwards")
    def _logs_requested(self, event: ForwardTable.LogsRequested) -> None:
        self.papp.open_logs(event.forward_id)

    @on(ForwardTable.RowHighlighted, "#forwards")
    def _row_highlighted(self, event: ForwardTable.RowHighlighted) -> None:
        self._update_detail()

    # -- detail pane ------------------------------------------------------------------------

    def action_toggle_detail(self) -> None:
        self.detail.toggle()
        self._update_detail()

    def action_resources(self) -> None:
        self.papp.open_resources()

    def _update_detail(self) -> None:
        """The selected forward in full: the table cuts long errors, the pane does not."""
        if not self.live:
            return
        table = self.table
        fid = table.selected_id
        snap = table.snapshots.get(fid) if fid else None
        pane = self.detail
        if snap is None:
            pane.show(None)
            return
        note = table.notes.get(snap.id, "")
        if not pane.expanded:
            pane.show(Detail(snap, self.papp.clock(), note))
            return
        engine = self.engine
        try:
            connections = engine.open_connections(snap.id)
            log_lines = engine.logs(snap.id)
        except KeyError:  # removed meanwhile: its ForwardGone is on the way
            connections, log_lines = [], []
        pane.show(
            Detail(
                snap,
                self.papp.clock(),
                note,
                rates=table.rates(snap.id),
                node=self._node(snap),
                connections=connections,
                history=self.history.of(snap.id),
                log=log_lines,
                tz=self.papp.tz,
            )
        )

    def _node(self, snap: ForwardSnapshot) -> str:
        """The node of the forward's pod: asked once per pod (the snapshot has only the pod)."""
        if not snap.pod:
            return ""
        key = (snap.spec.kubeconfig or "", snap.context, snap.namespace, snap.pod)
        if key not in self._pod_nodes:
            self._pod_nodes[key] = ""
            self._look_up_node(key)
        return self._pod_nodes[key]

    @work(group="node-lookup")
    async def _look_up_node(self, key: tuple[str, str, str, str]) -> None:
        kubeconfig, context, namespace, pod = key
        try:
            node = await self.catalog.node_of(context, namespace, pod, kubeconfig or None)
        except PortfwdError as exc:
            node = f"unknown ({exc})"
        except Exception as exc:  # a bug must not take the dashboard down
            log.exception("looking up the node of %s failed", pod)
            node = f"unknown ({type(exc).__name__})"
        self._pod_nodes[key] = node or "(not scheduled)"
        if self.live:
            self._update_detail()
