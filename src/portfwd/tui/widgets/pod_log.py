"""The tail of the log of the pod a forward uses now, in the detail pane (`t`).

The widget asks the engine (`EngineAPI.pod_log`, in-process or through the daemon) for the
lines after the last one it has, a long poll: the engine answers as soon as there are new
lines, or after :data:`WAIT` seconds with none. Between two answers it pauses
:data:`GAP` seconds, so a pod that writes megabytes a second costs the screen a few repaints
a second, not one per line; what the engine could not keep is counted and said in the
heading. The engine follows the forward to another pod (a marker line says so) and escapes
the lines; they are drawn as `Text`, never markup.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from typing import TYPE_CHECKING, cast

from rich.text import Text
from textual import work
from textual.widgets import Static

from portfwd.engine.podlogs import PodLogPage
from portfwd.errors import PortfwdError

if TYPE_CHECKING:
    from portfwd.tui.app import PortfwdApp

log = logging.getLogger(__name__)

KEPT = 200  # lines the widget keeps (the engine keeps more)
SHOWN = 60  # lines drawn, the latest
WAIT = 10  # seconds one read may wait for news
GAP = 0.3  # seconds between two reads
RETRY = 3.0  # seconds after a failed read


class PodLogView(Static):
    """Follows one forward's pod log while it is shown; `follow(None)` stops."""

    DEFAULT_CSS = """
    PodLogView { height: auto; }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__("", id=id)
        self.forward_id: str | None = None
        self.container: str | None = None  # asked for; None: the engine's choice
        self.page = PodLogPage()
        self.lines: deque[str] = deque(maxlen=KEPT)
        self.skipped = 0  # lines this view missed (gone before it read them)
        self.failure = ""  # the last read's failure ("": it worked)
        self.reads = 0  # answers received (tests wait on it)

    def follow(self, forward_id: str | None) -> None:
        """Tail `forward_id`'s pod log (None: stop). The same forward again changes nothing."""
        if forward_id == self.forward_id:
            return
        self.forward_id = forward_id
        self.container = None
        self._restart()

    def next_container(self) -> str | None:
        """Switch to the pod's next container; its name (None: the pod has only one)."""
        names = self.page.containers
        if len(names) < 2 or self.forward_id is None:
            return None
        current = self.container or self.page.container
        at = names.index(current) if current in names else -1
        self.container = names[(at + 1) % len(names)]
        self._restart()
        return self.container

    def _restart(self) -> None:
        self.page = PodLogPage()
        self.lines.clear()
        self.skipped = 0
        self.failure = ""
        self.workers.cancel_group(self, "pod-log")
        self.update(self.render_text())
        if self.forward_id is not None:
            self._tail(self.forward_id, self.container)

    @work(group="pod-log", exclusive=True)
    async def _tail(self, forward_id: str, container: str | None) -> None:
        engine = cast("PortfwdApp", self.app).engine
        after = 0
        while True:
            try:
                page: PodLogPage = await engine.pod_log(forward_id, container, after, WAIT)
            except KeyError:
                self.failure = "the forward is gone"
                self.update(self.render_text())
                return
            except PortfwdError as exc:  # the daemon went away, a bad reply
                self.failure = str(exc)
                self.update(self.render_text())
                await asyncio.sleep(RETRY)
                continue
            self.failure = ""
            self.reads += 1
            self.skipped += page.skipped
            self.lines.extend(page.lines)
            self.page = page
            after = page.next
            self.update(self.render_text())
            self._scroll_parent()
            await asyncio.sleep(GAP)

    def _scroll_parent(self) -> None:
        parent = self.parent
        scroll_end = getattr(parent, "scroll_end", None)
        if scroll_end is not None:
            scroll_end(animate=False)

    def render_text(self) -> Text:
        page = self.page
        text = Text()
        text.append("Pod log", style="bold underline")
        if page.pod:
            text.append(f"  pod {page.pod}")
        if page.container:
            text.append(f"  container {page.container}")
            if len(page.containers) > 1:
                text.append(f"  (c: next of {', '.join(page.containers)})", style="dim")
        lost = page.dropped + self.skipped
        if lost:
            text.append(
                f"  ·  {lost:,} line{'s' if lost != 1 else ''} dropped (the pod writes faster "
                "than shown)",
                style="yellow",
            )
        text.append("  ·  t: hide", style="dim")
        problem = self.failure or page.error
        if problem:
            text.append("\n")
            text.append(problem, style="red")
        shown = list(self.lines)[-SHOWN:]
        if not shown and not problem:
            text.append("\n")
            text.append(
                "  waiting for the log…" if self.reads == 0 else "  no log lines yet",
                style="dim",
            )
        for line in shown:
            text.append("\n")
            text.append(line)
        return text
