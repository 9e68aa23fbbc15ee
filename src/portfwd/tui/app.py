"""The Textual application: wires the engine's event stream, the session and the screens.

Thin on purpose: the screens render and act, the engine forwards, the `Session` service
restores and persists. The app owns one worker that turns the engine's events into Textual
messages, and the quit sequence (save the session, then let go of the engine: an in-process
one stops every forward, a daemon keeps them, then exit).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import traceback
import webbrowser
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from datetime import tzinfo
from typing import Any

from rich.text import Text
from textual import work
from textual.app import App, SystemCommand
from textual.binding import Binding
from textual.notifications import SeverityLevel
from textual.screen import Screen

from portfwd.engine.api import EngineAPI, EventStream
from portfwd.engine.catalog import Catalog, ContextChoice
from portfwd.engine.events import (
    ForwardAdded,
    ForwardChanged,
    ForwardRemoved,
    Lagged,
    LogLine,
    StatsTick,
)
from portfwd.engine.model import ForwardSpec, ForwardState, ForwardStats, LogEntry
from portfwd.errors import PortfwdError
from portfwd.safetext import escape_controls
from portfwd.store.session import Session, describe_lock
from portfwd.tui.format import forward_label
from portfwd.tui.messages import (
    ForwardCreated,
    ForwardGone,
    ForwardUpdated,
    LogBatch,
    Resync,
    StatsBatch,
)
from portfwd.tui.screens.dashboard import DashboardScreen
from portfwd.tui.screens.dialogs import ConfirmScreen, HelpScreen
from portfwd.tui.screens.logs import LogScreen
from portfwd.tui.screens.picker import NewForwardScreen

log = logging.getLogger(__name__)

USEFUL_BUILTIN_COMMANDS = frozenset({"Theme"})
LOG_BATCH_MAX = 2000  # lines queued for the log views between two repaints


_STOPPED_STATES = (ForwardState.STOPPED, ForwardState.ERROR)


def _forwards(count: int) -> str:
    return f"{count} forward{'' if count == 1 else 's'}"


class PortfwdApp(App[int]):
    CSS_PATH = "portfwd.tcss"
    TITLE = "portfwd"
    ENABLE_COMMAND_PALETTE = True
    BINDINGS = [
        Binding("q", "quit", "Quit"),
        Binding("ctrl+c", "quit", "Quit", show=False, priority=True),
        Binding("question_mark", "help", "Help"),
        Binding("Q", "stop_all_and_quit", "Stop all & quit", show=False),
        Binding("p", "profiles", "Profiles", show=False),
        Binding("colon", "quick_add", "Quick add", show=False),
        Binding("m", "bulk", "Several forwards", show=False),
    ]

    def __init__(
        self,
        engine: EngineAPI,
        *,
        catalog: Catalog,
        session: Session | None = None,
        context: str = "",
        cluster: str = "",
        namespace: str | None = None,
        spec_kubeconfig: str | None = None,
        clock: Callable[[], float] = time.time,
        tz: tzinfo | None = None,
        open_url: Callable[[str], Any] = webbrowser.open,
        warnings: Iterable[str] = (),
        protocol: str = "auto",
        daemon: dict[str, Any] | None = None,
        reattach: Callable[[], Awaitable[Any]] | None = None,
    ) -> None:
        super().__init__()
        self.daemon = daemon  # the daemon's hello when attached to one (pid, socket...)
        # Attached: starts a daemon (when none runs) and returns a RemoteEngine on it. Offered
        # when the daemon goes away; without it, the dashboard exits (code 1).
        self.reattach = reattach
        self.daemon_lost = False
        self.protocol = protocol  # for forwards added in this run (--protocol)
        # What screens act through (`screens/base.py`): the forwards, and what the cluster lists.
        self.engine = engine
        self.catalog = catalog
        self.session = session
        self.context_name = context
        self.cluster_name = cluster
        self.default_namespace = namespace
        self.switched = False  # `:ctx` / `:ns` moved the defaults: the header names both
        self.spec_kubeconfig = spec_kubeconfig
        self.clock = clock
        self.tz = tz
        self.url_opener = open_url
        self.startup_warnings = list(warnings)
        self.restored = False  # True once the saved session is back (for tests and demo)
        self.quitting = False
        self.exit_message = ""  # said on the terminal once the screen is restored
        self.crash: str | None = None  # formatted traceback of an unexpected exception
        self._subscription: EventStream | None = None
        self._stats_batch: dict[str, ForwardStats] | None = None
        self._log_batch: deque[tuple[str | None, LogEntry]] | None = None
        self.dashboard = DashboardScreen()
        self.sub_title = self._sub_title()

    def _sub_title(self) -> str:
        parts = []
        if self.daemon is not None:
            parts.append(f"attached to the daemon (pid {self.daemon.get('pid')})")
            proxy = self.daemon.get("proxy")
            if isinstance(proxy, dict) and proxy.get("listen"):
                parts.append(f"proxy {proxy.get('listen')}")
        if self.context_name:
            parts.append(f"context {self.context_name}")
        if self.cluster_name:
            parts.append(f"cluster {self.cluster_name}")
        if self.switched and self.default_namespace:
            parts.append(f"namespace {self.default_namespace}")
        return escape_controls(" · ".join(parts)) or "no context"  # names from the kubeconfig

    def notify(
        self,
        message: str,
        *,
        title: str = "",
        severity: SeverityLevel = "information",
        timeout: float | None = None,
        markup: bool = True,
    ) -> None:
        """Every toast, from any screen: plain text (never markup: a name like `[red]x` or
        `[link=...]` shows as typed) with control characters escaped (API messages, names,
        the session file's warnings)."""
        super().notify(
            escape_controls(message),
            title=escape_controls(title),
            severity=severity,
            timeout=timeout,
            markup=False,
        )

    # -- start-up -----------------------------------------------------------------------------

    async def on_mount(self) -> None:
        # Subscribe before reading the snapshot: an event in between is applied twice, never
        # lost (updates are idempotent).
        self._subscription = self.engine.subscribe()
        await self.push_screen(self.dashboard)
        self.dashboard.set_all(self.engine.snapshot())
        self._consume_events(self._subscription)
        for warning in self.startup_warnings:
            self.notify(warning, severity="warning", timeout=15, markup=False)
        self._restore_session()

    @work(group="engine-events", exit_on_error=True)
    async def _consume_events(self, subscription: EventStream) -> None:
        try:
            async for event in subscription:
                if isinstance(event, StatsTick):
                    if self._stats_batch is None:
                        self._stats_batch = {}
                        self.post_message(StatsBatch(self._stats_batch))
                    self._stats_batch[event.forward_id] = event.stats
                elif isinstance(event, ForwardAdded | ForwardChanged):
                    self.post_message(ForwardUpdated(event.snapshot))
                elif isinstance(event, ForwardRemoved):
                    self.post_message(ForwardGone(event.forward_id))
                elif isinstance(event, LogLine):
                    if self._log_batch is None:
                        self._log_batch = deque(maxlen=LOG_BATCH_MAX)
                        self.post_message(LogBatch(self._log_batch))
                    self._log_batch.append((event.forward_id, event.entry))
                elif isinstance(event, Lagged):
                    self.post_message(Resync())
        finally:
            subscription.close()
        if self.daemon is not None and not self.quitting and subscription is self._subscription:
            # The stream ended without us: the daemon stopped or was killed.
            self.call_later(self._daemon_gone)
        elif not self.quitting and getattr(self.engine, "lost", None):
            # The dashboard's own engine process (daemon/private.py) died: nothing runs the
            # forwards any more. The caller says why on the terminal.
            self.quitting = self.daemon_lost = True
            self.exit(return_code=1)

    def _daemon_gone(self) -> None:
        """Offer to start a daemon again and re-attach (it restores its session); no, or no
        way to, exits with code 1 and the caller says why on the terminal."""
        if self.quitting:
            return
        lost = getattr(self.engine, "lost", None) or "it went away"
        if self.reattach is None:
            self.quitting = self.daemon_lost = True
            self.exit(return_code=1)
            return
        question = (
            f"The portfwd daemon (pid {self._daemon_pid()}) is gone: {lost}.\n\n"
            "Start a daemon again and re-attach? It restores its saved session. "
            "No quits this dashboard."
        )

        def answered(yes: bool | None) -> None:
            if yes:
                self._reattach()
            elif not self.quitting:
                self.quitting = self.daemon_lost = True
                self.exit(return_code=1)

        self.push_screen(ConfirmScreen(question, confirm_label="Start and re-attach"), answered)

    @work(group="reattach", exclusive=True)
    async def _reattach(self) -> None:
        assert self.reattach is not None
        self.notify("Starting the daemon…", timeout=5)
        try:
            engine = await self.reattach()
        except Exception as exc:  # PortfwdError, OSError, a daemon that dies at start
            if self.quitting:
                return
            self.notify(f"cannot start the daemon: {exc}", severity="error", timeout=10)
            self._daemon_gone()
            return
        old = self.engine
        self.engine = engine
        self.daemon = dict(getattr(engine, "server", {}) or {})
        with contextlib.suppress(Exception):  # the old connection is gone already
            await old.shutdown()
        self.sub_title = self._sub_title()
        self._subscription = engine.subscribe()
        self.dashboard.set_all(engine.snapshot())
        self._consume_events(self._subscription)
        self.notify(f"re-attached to the daemon (pid {self._daemon_pid()})", timeout=6)

    @work(group="session")
    async def _restore_session(self) -> None:
        """Bring the saved session back (or seed a first one); from then on it is saved."""
        session = self.session
        notes: dict[str, str] = {}
        try:
            if session is not None:
                session.on_error = lambda message: self.notify(
                    message, severity="error", timeout=15, markup=False
                )
                notes = await session.start()
                locked = describe_lock(session)
                if locked is not None:
                    self.notify(locked, severity="warning", timeout=20, markup=False)
                    notes = self._locked_notes(session, notes)
        except Exception:
            if not self.quitting:  # quitting shuts the engine down under a slow restore
                raise
        finally:
            self.dashboard.set_notes(notes)
            self.restored = True

    @staticmethod
    def _locked_notes(session: Session, notes: dict[str, str]) -> dict[str, str]:
        """Another portfwd holds the session file: the running forwards this window left
        stopped run there (their ports are taken). Say so, not `--no-restore`: nobody gave it."""
        if not session.restart:
            return notes  # the user did give --no-restore: that note is true
        holder = session.locked_by
        who = (
            f"another portfwd (pid {holder})"
            if holder not in (None, "", "?")
            else ("another portfwd")
        )
        running = {f.id for f in session.loaded.forwards if f.running}
        return {
            fid: f"runs in {who}, which holds the session; not started here"
            if fid in running
            else note
            for fid, note in notes.items()
        }

    # -- engine messages ------------------------------------------------------------------------

    def on_forward_updated(self, message: ForwardUpdated) -> None:
        self.dashboard.upsert(message.snapshot)
        for screen in self._log_screens():
            if screen.forward_id == message.snapshot.id:
                screen.refresh_title()

    def on_forward_gone(self, message: ForwardGone) -> None:
        self.dashboard.remove_forward(message.forward_id)
        for screen in self._log_screens():
            if screen.forward_id == message.forward_id:
                screen.refresh_title()  # "(removed)", not its last state

    def on_stats_batch(self, message: StatsBatch) -> None:
        if self._stats_batch is message.stats:
            self._stats_batch = None  # the next tick starts a new batch
        for forward_id, stats in message.stats.items():
            self.dashboard.update_stats(forward_id, stats)

    def on_log_batch(self, message: LogBatch) -> None:
        if self._log_batch is message.entries:
            self._log_batch = None
        screens = self._log_screens()
        for forward_id, entry in message.entries:
            for screen in screens:
                screen.add_entry(forward_id, entry)

    def on_resync(self, message: Resync) -> None:
        self.dashboard.set_all(self.engine.snapshot())

    def on_forward_created(self, message: ForwardCreated) -> None:
        if message.forward_ids:
            self.dashboard.select(message.forward_ids[0])

    def _log_screens(self) -> list[LogScreen]:
        return [s for s in self.screen_stack if isinstance(s, LogScreen)]

    # -- what screens ask of the app ----------------------------------------------------------

    def taken_ports(self, exclude: str | None = None) -> dict[int, str]:
        """Local ports other forwards hold or want: the forms refuse them early."""
        taken: dict[int, str] = {}
        for snap in self.engine.snapshot():
            if snap.id == exclude:
                continue
            label = forward_label(snap)
            for _, port in snap.bound:
                taken[port] = label
            if snap.spec.local_port:
                taken.setdefault(snap.spec.local_port, label)
        return taken

    def switch_context(self, choice: ContextChoice) -> None:
        """`:ctx NAME`: new forwards, the browse view and the picker use it (and its own
        namespace, as k9s does); forwards already running keep their own context."""
        self.context_name = choice.name
        self.cluster_name = choice.cluster
        self.default_namespace = choice.namespace or "default"
        self._where_changed(f"context {choice.name}, namespace {self.default_namespace}")

    def switch_namespace(self, namespace: str) -> None:
        """`:ns NAME`: the namespace new forwards, the browse view and the picker use."""
        self.default_namespace = namespace
        self._where_changed(f"namespace {namespace} (context {self.context_name or 'current'})")

    def _where_changed(self, said: str) -> None:
        self.switched = True
        self.sub_title = self._sub_title()
        dash = self.dashboard
        if dash.live:
            dash.table.default_context = self.context_name  # a context tag where it differs
            dash.table.rebuild()
        self.notify(f"now in {said}; running forwards keep their own", timeout=5)

    def open_picker(self) -> None:
        self.push_screen(
            NewForwardScreen(context=self.context_name, namespace=self.default_namespace),
            self.add_forwards,
        )

    def open_resources(self) -> None:
        from portfwd.tui.screens.resources import ResourcesScreen

        self.push_screen(ResourcesScreen(self.context_name, self.default_namespace))

    def add_forwards(self, specs: list[ForwardSpec] | None) -> None:
        """Add and start these (the picker's, the resources view's); select the first."""
        if specs:
            self._add_forwards(specs)

    @work(group="engine-actions")
    async def _add_forwards(self, specs: list[ForwardSpec]) -> None:
        ids: list[str] = []
        for spec in specs:
            try:
                ids.append(await self.engine.add(spec, start=True))
            except PortfwdError as exc:
                self.notify(
                    f"{spec.target} {spec.remote_port}: {exc}", severity="error", markup=False
                )
            except Exception as exc:
                if self.quitting:
                    return
                log.exception("adding %s failed", spec)
                self.notify(
                    f"adding {spec.target} failed unexpectedly: {exc!r}",
                    severity="error",
                    markup=False,
                )
        self.post_message(ForwardCreated(ids))

    def open_logs(self, forward_id: str | None) -> None:
        self.push_screen(LogScreen(forward_id))

    def action_profiles(self) -> None:
        """The profiles view (from the dashboard)."""
        from portfwd.tui.screens.profiles import ProfilesScreen

        if self.screen is self.dashboard:
            self.push_screen(ProfilesScreen())

    def action_quick_add(self, initial: str = "") -> None:
        """The one-line quick add prompt (from the dashboard); `ctx `/`ns ` switch."""
        from portfwd.tui.screens.quick_add import QuickAddScreen

        if self.screen is self.dashboard:
            self.push_screen(QuickAddScreen(initial), self.add_forwards)

    def action_switch_context(self) -> None:
        self.action_quick_add("ctx ")

    def action_switch_namespace(self) -> None:
        self.action_quick_add("ns ")

    def action_bulk(self) -> None:
        """Mark several forwards, start or stop them together (from the dashboard)."""
        from portfwd.tui.screens.bulk import BulkScreen

        if self.screen is self.dashboard:
            self.push_screen(BulkScreen())

    def action_help(self) -> None:
        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen())

    # -- quit: save first, then stop everything ---------------------------------------------------

    def _daemon_pid(self) -> str:
        return str((self.daemon or {}).get("pid", "?"))

    async def action_quit(self) -> None:
        if self.quitting:
            return
        self.quitting = True
        count = len(self.engine.snapshot())
        if self.daemon is not None:
            said = f"{_forwards(count)} keep{'s' if count == 1 else ''} running in the daemon"
            self.exit_message = f"{said} (pid {self._daemon_pid()})"
            self.notify(f"Detaching: {self.exit_message}", timeout=10)
        else:
            self.notify(f"Saving the session and stopping {_forwards(count)}…", timeout=10)
        self._quit_sequence()

    async def action_stop_all_and_quit(self) -> None:
        """Attached to a daemon, `q` leaves its forwards running; this is the explicit way to
        stop them all (in-process, `q` already does). It asks first: other windows and
        scripts may use those forwards."""
        if self.quitting:
            return
        if self.daemon is None:
            await self.action_quit()
            return
        if isinstance(self.screen, ConfirmScreen):
            return
        running = [s for s in self.engine.snapshot() if s.state not in _STOPPED_STATES]
        total = len(self.engine.snapshot())
        question = (
            f"Stop all {_forwards(len(running))} running in the daemon (pid {self._daemon_pid()}),"
            " then detach?\n\nOther windows and scripts using them lose them; the daemon keeps"
            f" the {_forwards(total)} (stopped) and keeps running."
        )

        def answered(yes: bool | None) -> None:
            if yes and not self.quitting:
                self.quitting = True
                self.notify(f"Stopping {_forwards(len(running))} in the daemon…", timeout=10)
                self._quit_sequence(stop_all=True)

        self.push_screen(ConfirmScreen(question, confirm_label="Stop all"), answered)

    @work(group="quit", exclusive=True)
    async def _quit_sequence(self, stop_all: bool = False) -> None:
        try:
            if stop_all:
                targets = [s for s in self.engine.snapshot() if s.state not in _STOPPED_STATES]
                results = await asyncio.gather(
                    *(self.engine.stop(s.id) for s in targets), return_exceptions=True
                )
                failed = sum(1 for r in results if isinstance(r, BaseException))
                said = f"stopped {_forwards(len(targets) - failed)} in the daemon"
                if failed:
                    said += f" ({failed} could not be stopped)"
                self.exit_message = f"{said} (pid {self._daemon_pid()}); it keeps running"
            if self.session is not None:
                await self.session.close(flush=True)
            if self._subscription is not None:
                self._subscription.close()
            self.workers.cancel_group(self, "engine-events")
            await self.engine.shutdown()
        finally:
            message = Text(escape_controls(self.exit_message)) if self.exit_message else None
            self.exit(0, message=message)

    # -- command palette: every action by name --------------------------------------------------

    def get_system_commands(self, screen: Screen[Any]) -> Iterable[SystemCommand]:
        from portfwd.tui.commands import palette_commands

        yield from palette_commands(self, screen)
        for command in super().get_system_commands(screen):
            # Only the theme: Quit is ours (it saves the session first), Keys is `?`,
            # Maximize/Screenshot act on widgets and files the user never sees here.
            if command.title in USEFUL_BUILTIN_COMMANDS:
                yield command

    # -- crash capture: run_tui writes it to a log file -----------------------------------------

    def _handle_exception(self, error: Exception) -> None:
        # A private hook, on purpose: Textual (8.x) has no public one, and every unhandled
        # exception (message handlers, workers, timers) goes through here before the app exits
        # and restores the terminal. tests/tui/test_crash.py notices if that changes.
        if self.crash is None:
            self.crash = "".join(traceback.format_exception(error))
        super()._handle_exception(error)

    def _fatal_error(self) -> None:
        # Textual's own prints a traceback WITH local variables on the terminal, and a local
        # may hold a token or a key. Ours goes, without locals, to the crash log (mode 0600)
        # whose path run_tui prints; so only exit quietly here.
        self.bell()
        self._close_messages_no_wait()
