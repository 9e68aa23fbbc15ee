"""Several forwards at once (`m` on the dashboard): mark some, then start or stop them all.

A list of every forward with a mark box (space marks, `*` marks all or none); `s` starts the
marked ones (or all, when none is marked), `x` stops them. The engine calls run together in
a worker; a forward that fails says so in a toast, the others go on.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.widgets import Label, SelectionList, Static

from portfwd.engine.model import ForwardState
from portfwd.errors import PortfwdError
from portfwd.safetext import escape_controls
from portfwd.tui.format import forward_label
from portfwd.tui.screens.base import PortfwdModal
from portfwd.tui.widgets.mark_list import MarkList

if TYPE_CHECKING:
    from portfwd.tui.app import PortfwdApp

log = logging.getLogger(__name__)

HINT = "space marks · * all/none · s start · x stop · esc back (none marked: all)"


class BulkScreen(PortfwdModal[None]):
    BINDINGS = [
        Binding("s", "start_marked", "Start marked"),
        Binding("x", "stop_marked", "Stop marked"),
        Binding("asterisk", "mark_all", "Mark all/none"),
        Binding("escape,q", "close", "Back"),
    ]

    def __init__(self) -> None:
        super().__init__(classes="dialog-screen")

    def compose(self) -> ComposeResult:
        snaps = self.engine.snapshot()
        with Vertical(classes="dialog"):
            yield Label("Start / stop several forwards", classes="dialog-title")
            yield MarkList(
                *(
                    (Text(escape_controls(f"{forward_label(s)}  ({s.state.value})")), s.id)
                    for s in snaps
                ),
                id="bulk-list",
            )
            yield Static(HINT, id="bulk-hint", markup=False)

    def on_mount(self) -> None:
        self.query_one("#bulk-list", SelectionList).focus()

    @property
    def marked(self) -> list[str]:
        return list(self.query_one("#bulk-list", SelectionList).selected)

    def _chosen(self) -> list[str]:
        known = {s.id for s in self.engine.snapshot()}
        chosen = self.marked or list(known)
        return [fid for fid in chosen if fid in known]

    def action_mark_all(self) -> None:
        box: SelectionList[str] = self.query_one("#bulk-list", SelectionList)
        if box.selected:
            box.deselect_all()
        else:
            box.select_all()

    def action_start_marked(self) -> None:
        ids = self._chosen()
        idle = (ForwardState.STOPPED, ForwardState.ERROR)
        snaps = {s.id: s for s in self.engine.snapshot()}
        self._run("starting", [i for i in ids if snaps[i].state in idle], start=True)
        self.dismiss(None)

    def action_stop_marked(self) -> None:
        ids = self._chosen()
        snaps = {s.id: s for s in self.engine.snapshot()}
        self._run(
            "stopping", [i for i in ids if snaps[i].state is not ForwardState.STOPPED], start=False
        )
        self.dismiss(None)

    def _run(self, what: str, ids: list[str], *, start: bool) -> None:
        self.notify(f"{what} {len(ids)} forward(s)", timeout=4)
        run_all(self.papp, what, ids, start=start)

    def action_close(self) -> None:
        self.dismiss(None)


def run_all(app: PortfwdApp, what: str, ids: list[str], *, start: bool) -> None:
    """Start or stop these forwards together, in an app worker (it outlives the screen)."""

    async def one(fid: str) -> None:
        try:
            if start:
                await app.engine.start(fid)
            else:
                await app.engine.stop(fid)
        except (PortfwdError, KeyError) as exc:
            app.notify(f"{what} {fid}: {exc}", severity="error", timeout=10)
        except Exception as exc:
            if app.quitting:
                return
            log.exception("%s %s failed", what, fid)
            app.notify(f"{what} failed unexpectedly: {exc!r}", severity="error")

    async def every() -> None:
        await asyncio.gather(*(one(fid) for fid in ids))

    app.run_worker(every(), group="engine-actions", exit_on_error=False)
