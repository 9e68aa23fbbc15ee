"""The profiles view (`p`): the profiles of profiles.yaml, their groups, how many are active.

One row per profile and one per group under it, each with "active/total" counted from the
engine: a profile forward's engine forwards are the ones whose spec name is one of its
`spec_names()` (the names `portfwd up` gives them), or unnamed ones with the same target,
ports, context and namespace (the forwards a profile was saved from). Enter or space starts
the row's forwards (adding the ones the engine does not have), or stops them when all are
active; `y` copies their kubectl commands; `s` saves the dashboard's forwards as a profile;
`a` adds the dashboard's selected forward to the row's profile (and group). The file is
read and written in threads; a broken file shows its problems (file:line:col) above the
profiles that still check out.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TypeVar

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, DataTable, Footer, Header, Input, Label, Static
from textual.widgets.data_table import CellDoesNotExist

from portfwd.engine.identity import clash_line, find_running, is_same_spec, split_running
from portfwd.engine.model import ForwardSnapshot, ForwardSpec, ForwardState
from portfwd.engine.present import kubectl_command
from portfwd.errors import PortfwdError
from portfwd.safetext import escape_controls, escape_lines
from portfwd.store.profiles import default_profiles_file, load_profiles, save_profile
from portfwd.store.profiles_model import (
    Profile,
    ProfileForward,
    ProfilesFile,
    add_specs,
    profile_forward_specs,
    profile_from_specs,
)
from portfwd.store.profiles_select import UpUsageError, select
from portfwd.tui.screens.base import PortfwdScreen

log = logging.getLogger(__name__)

T = TypeVar("T")

REFRESH_SECONDS = 0.5  # how often the active counts are re-read from the engine


@dataclass(frozen=True)
class Row:
    """What a row of the table stands for: a whole profile (group None) or one group."""

    profile: str
    group: str | None = None

    @property
    def key(self) -> str:
        return f"{self.profile}\0{self.group or ''}"

    @property
    def label(self) -> str:
        return self.profile if self.group is None else f"{self.profile} / {self.group}"


def engine_forward(spec: ForwardSpec, snapshots: list[ForwardSnapshot]) -> ForwardSnapshot | None:
    """The engine's forward for a profile forward: the same forward by `engine/identity.py`
    (a `:80` entry matches whatever port it got), whatever its name."""
    return find_running(spec, snapshots)


_UP = (ForwardState.ACTIVE, ForwardState.IDLE)  # IDLE: lazy, bound, opens on first use


def count_active(specs: list[ForwardSpec], snapshots: list[ForwardSnapshot]) -> int:
    there, _, _ = split_running(specs, snapshots)
    return sum(1 for _, snap in there if snap.state in _UP)


def _same_forward(a: ProfileForward, b: ProfileForward) -> bool:
    specs_a = profile_forward_specs(a)
    specs_b = profile_forward_specs(b)
    return len(specs_a) == len(specs_b) and all(
        is_same_spec(x, y) and x.local_port == y.local_port
        for x, y in zip(specs_a, specs_b, strict=True)
    )


def with_forward(profile: Profile, spec: ForwardSpec, group: str | None) -> tuple[Profile, str]:
    """`profile` with `spec` added (unless it has it already) and, with a group, the forward
    in that group; and the profile forward's name."""
    wanted = profile_from_specs("x", [spec]).forwards[0]
    existing = next((f for f in profile.forwards if _same_forward(f, wanted)), None)
    if existing is None:
        profile = add_specs(profile, [spec])
        existing = profile.forwards[-1]
    if group is not None and existing.name not in profile.groups.get(group, ()):
        groups = dict(profile.groups)
        groups[group] = (*groups.get(group, ()), existing.name)
        profile = replace(profile, groups=groups)
    return profile, existing.name


class ProfilesTable(DataTable[Text]):
    """The rows of profiles and groups, moved through as every table of the app: `j`/`k`,
    `g`/`G` (a `j` that did nothing left enter on the whole profile)."""

    BINDINGS = [
        Binding("home,g", "scroll_top", "First row", show=False),
        Binding("end,G", "scroll_bottom", "Last row", show=False),
        Binding("j", "cursor_down", "Down", show=False),
        Binding("k", "cursor_up", "Up", show=False),
    ]


class NamePrompt(ModalScreen[str | None]):
    """Ask for a profile name (saving the dashboard)."""

    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, question: str, value: str = "") -> None:
        super().__init__(classes="dialog-screen")
        self._question = question
        self._value = value

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label(self._question, classes="dialog-title", markup=False)
            yield Input(self._value, id="profile-name", placeholder="e.g. morning")
            yield Static("", id="profile-name-check", classes="check", markup=False)
            with Horizontal(classes="buttons"):
                yield Button("Save (enter)", variant="primary", id="save")
                yield Button("Cancel (esc)", id="cancel")

    def on_mount(self) -> None:
        self.query_one("#profile-name", Input).focus()

    @on(Input.Submitted)
    @on(Button.Pressed, "#save")
    def _save(self) -> None:
        name = self.query_one("#profile-name", Input).value.strip()
        if not name:
            self.query_one("#profile-name-check", Static).update("type a name first")
            return
        self.dismiss(name)

    @on(Button.Pressed, "#cancel")
    def action_cancel(self) -> None:
        self.dismiss(None)


class ProfilesScreen(PortfwdScreen[None]):
    DEFAULT_CSS = """
    #profiles-file { height: auto; padding: 0 1; text-style: bold; }
    #profiles-problems { height: auto; max-height: 8; padding: 0 1; color: $error; }
    #profiles-table { height: 1fr; }
    """
    BINDINGS = [
        Binding("enter,space", "start_stop", "Start/Stop"),
        Binding("s", "save", "Save as profile"),
        Binding("a", "add_selected", "Add fwd"),
        Binding("y", "copy_commands", "Copy cmds"),
        Binding("r", "reload", "Reload"),
        Binding("escape,q", "close", "Back"),
    ]

    def __init__(self, path: Path | None = None) -> None:
        super().__init__(id="profiles")
        self.path = path or default_profiles_file()
        self.loaded: ProfilesFile | None = None
        self.file_error: str | None = None
        self.reading = True
        self._rows: dict[str, Row] = {}

    def compose(self) -> ComposeResult:
        yield Header()
        with Vertical(id="profiles-body"):
            yield Static("reading the profiles file…", id="profiles-file", markup=False)
            yield Static("", id="profiles-problems", markup=False)
            yield ProfilesTable(id="profiles-table", cursor_type="row", zebra_stripes=True)
        yield Footer()

    def on_mount(self) -> None:
        self.sub_title = f"profiles · {self.app.sub_title}"
        table = self.query_one("#profiles-table", DataTable)
        table.add_column("profile / group", key="name")
        table.add_column("active", key="active")
        table.add_column("forwards", key="forwards")
        table.add_column("description", key="description")
        table.focus()
        self.set_interval(REFRESH_SECONDS, self.refresh_counts)
        self.action_reload()

    # -- the file -------------------------------------------------------------------------------

    def action_reload(self) -> None:
        self._load()

    @work(group="profiles-load", exclusive=True)
    async def _load(self) -> None:
        self.reading = True
        try:
            loaded = await asyncio.to_thread(load_profiles, self.path)
            error = None
        except PortfwdError as exc:
            loaded, error = None, str(exc)
        self.loaded, self.file_error, self.reading = loaded, error, False
        self._show()

    def _show(self) -> None:
        loaded = self.loaded
        head = self.query_one("#profiles-file", Static)
        problems = self.query_one("#profiles-problems", Static)
        if loaded is None:
            head.update(escape_controls(f"profiles file {self.path}"))
            problems.update(escape_lines(self.file_error or ""))
            problems.display = True
        else:
            count = len(loaded.profiles)
            if not loaded.existed:
                what = "not there yet: press s to save the dashboard as a profile"
            else:
                what = f"{count} profile(s)"
            head.update(escape_controls(f"{loaded.path}: {what}"))
            lines = [str(p) for p in loaded.problems]
            if loaded.broken:
                lines.append("left out until fixed: " + ", ".join(loaded.broken))
            problems.update(escape_lines("\n".join(lines)))
            problems.display = bool(lines)
        self._fill()

    def _fill(self) -> None:
        table = self.query_one("#profiles-table", DataTable)
        keep = self.selected_row
        table.clear()
        self._rows = {}
        loaded = self.loaded
        if loaded is None:
            return
        for name in loaded.order or list(loaded.profiles):
            profile = loaded.profiles.get(name)
            if profile is None:
                continue
            rows = [Row(name)] + [Row(name, g) for g in profile.groups]
            for row in rows:
                self._rows[row.key] = row
                forwards = profile.select([row.group] if row.group else [])
                table.add_row(
                    Text(row.profile) if row.group is None else Text(f"└ {row.group}"),
                    Text(""),
                    Text(", ".join(f.name for f in forwards)),
                    Text(profile.description if row.group is None else "", style="dim"),
                    key=row.key,
                )
        self.refresh_counts()
        if keep is not None and keep.key in self._rows:
            table.move_cursor(row=table.get_row_index(keep.key), animate=False)

    def refresh_counts(self) -> None:
        loaded = self.loaded
        if loaded is None or not self._rows:
            return
        table = self.query_one("#profiles-table", DataTable)
        snapshots = self.engine.snapshot()
        for key, row in self._rows.items():
            profile = loaded.profiles[row.profile]
            names = self._specs(profile, row.group)
            active = count_active(names, snapshots)
            style = "green" if names and active == len(names) else ("yellow" if active else "")
            table.update_cell(key, "active", Text(f"{active}/{len(names)}", style=style))

    def _specs(self, profile: Profile, group: str | None) -> list[ForwardSpec]:
        """The row's forwards with the dashboard's defaults (as a start would make them)."""
        app = self.papp
        try:
            pairs = profile.specs(
                [group] if group else [],
                kubeconfig=app.spec_kubeconfig,
                context=app.context_name or None,
                namespace=app.default_namespace,
            )
        except (PortfwdError, KeyError):
            return []
        return [spec for _, spec in pairs]

    def counts(self) -> dict[str, str]:
        """Row label -> its "active/total" text (for tests and the palette)."""
        table = self.query_one("#profiles-table", DataTable)
        return {row.label: str(table.get_cell(key, "active")) for key, row in self._rows.items()}

    @property
    def selected_row(self) -> Row | None:
        table = self.query_one("#profiles-table", DataTable)
        if not self._rows or table.row_count == 0:
            return None
        try:
            row_key, _ = table.coordinate_to_cell_key(table.cursor_coordinate)
        except CellDoesNotExist:
            return None
        return self._rows.get(str(row_key.value))

    def select_row(self, profile: str, group: str | None = None) -> None:
        table = self.query_one("#profiles-table", DataTable)
        table.move_cursor(row=table.get_row_index(Row(profile, group).key), animate=False)

    # -- start / stop ---------------------------------------------------------------------------

    @on(DataTable.RowSelected)
    def _row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()  # enter on the table
        self.action_start_stop()

    def action_start_stop(self) -> None:
        row = self.selected_row
        if row is None:
            self.notify("No profile selected.", severity="warning", timeout=3)
            return
        self._toggle(row)

    async def _chosen(self, row: Row) -> list[ForwardSpec] | None:
        """The row's forwards as `portfwd up` would start them (the file read again), or
        None after saying why not."""
        app = self.papp
        try:
            chosen = await asyncio.to_thread(
                select,
                self.path,
                row.profile,
                [row.group] if row.group else [],
                kubeconfig=app.spec_kubeconfig,
                context=app.context_name or None,
                namespace=app.default_namespace,
                protocol=app.protocol,
            )
        except UpUsageError as exc:
            self.notify("; ".join(exc.lines), severity="error", timeout=10)
            return None
        except PortfwdError as exc:
            self.notify(str(exc), severity="error", timeout=10)
            return None
        if chosen.namespaces:  # followed by `portfwd up`; here only its forwards
            spaces = ", ".join(n.namespace for n in chosen.namespaces)
            self.notify(
                f"profile {row.profile}'s whole namespaces ({spaces}) are not started here: "
                f"`portfwd up {row.profile}` runs them, or b then N forwards the one shown",
                severity="warning",
                timeout=10,
                markup=False,
            )
        return chosen.specs

    @work(group="profiles-actions")
    async def _toggle(self, row: Row) -> None:
        app = self.papp
        specs = await self._chosen(row)
        if specs is None:
            return
        snapshots = app.engine.snapshot()
        there, clashes, missing = split_running(specs, snapshots)
        present = [snap for _, snap in there]
        if (
            specs
            and not clashes
            and len(present) == len(specs)
            and all(p.state in _UP for p in present)
        ):
            self.notify(f"stopping {row.label} ({len(present)} forward(s))", timeout=4)
            await self._each(present, lambda s: app.engine.stop(s.id), "stopping")
            return
        for spec, other in clashes:
            self.notify(clash_line(spec, other), severity="error", timeout=10, markup=False)
        idle = [p for p in present if p.state in (ForwardState.STOPPED, ForwardState.ERROR)]
        running = [
            spec.name or snap.spec.name or snap.id
            for spec, snap in there
            if snap.state not in (ForwardState.STOPPED, ForwardState.ERROR)
        ]
        said = f"starting {row.label} ({len(missing) + len(idle)} forward(s))"
        if running:
            said += f"; already running: {', '.join(running)}"
        self.notify(said, timeout=6, markup=False)
        await asyncio.gather(
            self._each(missing, lambda s: app.engine.add(s, start=True), "adding"),
            self._each(idle, lambda s: app.engine.start(s.id), "starting"),
        )

    async def _each(
        self, items: Sequence[T], call: Callable[[T], Awaitable[object]], what: str
    ) -> None:
        async def one(item: T) -> None:
            try:
                await call(item)
            except PortfwdError as exc:
                spec = item if isinstance(item, ForwardSpec) else getattr(item, "spec", None)
                name = getattr(spec, "name", None) or ""
                self.notify(f"{what} {name}: {exc}", severity="error", timeout=10)
            except Exception as exc:
                if self.papp.quitting:
                    return
                log.exception("%s %r failed", what, item)
                self.notify(f"{what} failed unexpectedly: {exc!r}", severity="error")

        await asyncio.gather(*(one(i) for i in items))

    def action_copy_commands(self) -> None:
        row = self.selected_row
        if row is None:
            self.notify("No profile selected.", severity="warning", timeout=3)
            return
        self._copy(row)

    @work(group="profiles-actions")
    async def _copy(self, row: Row) -> None:
        specs = await self._chosen(row)
        if not specs:
            return
        # The dashboard's `y` and this one copy one command per forward: a running forward's
        # bound port fills a `:80` here too.
        snapshots = self.engine.snapshot()
        commands = "\n".join(kubectl_command(s, engine_forward(s, snapshots)) for s in specs)
        self.app.copy_to_clipboard(commands)
        self.notify(commands, title=f"Copied {len(specs)} kubectl command(s)", timeout=8)

    # -- save the dashboard, add the selected forward -------------------------------------------

    def action_save(self) -> None:
        if not self.engine.snapshot():
            self.notify("The dashboard has no forwards to save.", severity="warning", timeout=4)
            return
        row = self.selected_row
        self.app.push_screen(
            NamePrompt("Save the dashboard's forwards as profile", row.profile if row else ""),
            self._named,
        )

    def _named(self, name: str | None) -> None:
        if not name:
            return
        session = self.papp.session
        specs, skipped = [], []
        for snap in self.engine.snapshot():
            if snap.state is ForwardState.ERROR and not snap.bound:  # would not start
                skipped.append(snap.spec.name or f"{snap.spec.target} {snap.spec.remote_port}")
            else:  # a free port stays free (`:8080`), not the port it happened to get
                specs.append(session.asked(snap) if session is not None else snap.spec)
        if skipped:
            self.notify(
                f"not saved, in error: {', '.join(skipped)}",
                severity="warning",
                timeout=8,
                markup=False,
            )
        if specs:
            self._save(name, specs)

    @work(group="profiles-io")
    async def _save(self, name: str, specs: list[ForwardSpec]) -> None:
        try:
            profile = profile_from_specs(name, specs)
            loaded = self.loaded
            old = loaded.profiles.get(name) if loaded is not None else None
            if old is not None:  # keep its description, defaults and groups
                profile = replace(old, forwards=profile.forwards)
                profile = replace(
                    profile,
                    groups={
                        g: tuple(n for n in members if any(f.name == n for f in profile.forwards))
                        for g, members in old.groups.items()
                    },
                )
            new = await asyncio.to_thread(save_profile, self.path, profile)
        except PortfwdError as exc:
            self.notify(str(exc), severity="error", timeout=15)
            return
        verb = "saved" if new else "updated"
        self.notify(f"{verb} profile {name} ({len(profile.forwards)} forward(s)) in {self.path}")
        self._load()

    def action_add_selected(self) -> None:
        row = self.selected_row
        if row is None or self.loaded is None:
            self.notify("No profile selected.", severity="warning", timeout=3)
            return
        dash = self.papp.dashboard
        fid = dash.table.selected_id if dash.is_mounted else None
        snap = next((s for s in self.engine.snapshot() if s.id == fid), None)
        if snap is None:
            self.notify("No forward selected on the dashboard.", severity="warning", timeout=4)
            return
        profile, name = with_forward(self.loaded.profiles[row.profile], snap.spec, row.group)
        self._add(profile, name, row)

    @work(group="profiles-io")
    async def _add(self, profile: Profile, name: str, row: Row) -> None:
        try:
            await asyncio.to_thread(save_profile, self.path, profile)
        except PortfwdError as exc:
            self.notify(str(exc), severity="error", timeout=15)
            return
        self.notify(f"added {name} to {row.label}")
        self._load()

    def action_close(self) -> None:
        self.dismiss(None)
