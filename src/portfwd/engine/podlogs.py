"""The log of the pod a forward uses now, followed for a view (the detail pane's tail).

A view asks :meth:`PodLogs.read` for the lines after the last one it has (a long poll: it
waits up to `wait` seconds for news), so the same call works in-process and through the
daemon. The first read of a forward starts its :class:`PodLogTail`; a tail nobody read for
:data:`IDLE_STOP` seconds stops by itself, as does the tail of a removed forward.

A tail follows the forward: when the forward moves to another pod (its watch, a restart),
the stream is cancelled and the new pod's log followed, with a marker line between the two.
Memory is bounded whatever the pod writes: :data:`MAX_LINES` lines are kept, at most
:data:`LINE_BUDGET` lines a second are read as text, and what is over the budget is only
counted (`dropped`), its bytes passed over without decoding. Lines are escaped text
(`kube/logs.py`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from portfwd.engine.events import ForwardChanged, ForwardRemoved, Lagged
from portfwd.engine.model import ForwardSnapshot
from portfwd.errors import PortfwdError
from portfwd.kube.client import KubeClient
from portfwd.kube.logs import LineSplitter, follow_pod_log
from portfwd.kube.objects import Container
from portfwd.safetext import escape_controls

log = logging.getLogger(__name__)

MAX_LINES = 2000  # kept per forward
LINE_BUDGET = 2000  # lines a second read as text; beyond that, counted and passed over
PAGE_LINES = 500  # at most this many lines in one reply (the latest)
TAIL_LINES = 100  # of a pod's log, when its follow starts
IDLE_STOP = 60.0  # seconds without a read before a tail stops
RETRY = 2.0  # seconds before a stream that ended (container restarting) is opened again
RETRY_ERROR = 10.0  # ... after a refusal (403, no such container): unless the pod changes
MAX_WAIT = 30  # seconds a read may wait for news


@dataclass(frozen=True)
class PodLogPage:
    """What a view gets: the lines after the one it had, and what it needs to say around."""

    lines: tuple[str, ...] = ()
    next: int = 0  # give it as `after` next time
    pod: str = ""  # the pod whose log this is ("": the forward has none yet)
    container: str = ""
    containers: tuple[str, ...] = ()  # the pod's containers (a choice when several)
    dropped: int = 0  # lines the pod wrote that were not kept: over the budget (total)
    skipped: int = 0  # lines this reader missed: gone from the buffer before it read them
    error: str = ""  # why no log is read now (403: the right that is missing)

    def to_dict(self) -> dict[str, Any]:
        return {
            "lines": list(self.lines),
            "next": self.next,
            "pod": self.pod,
            "container": self.container,
            "containers": list(self.containers),
            "dropped": self.dropped,
            "skipped": self.skipped,
            "error": self.error,
        }

    @classmethod
    def from_dict(cls, raw: Any) -> PodLogPage:
        data = raw if isinstance(raw, dict) else {}

        def text(key: str) -> str:
            value = data.get(key)
            return escape_controls(value) if isinstance(value, str) else ""

        def number(key: str) -> int:
            value = data.get(key)
            return value if isinstance(value, int) and not isinstance(value, bool) else 0

        def texts(key: str) -> tuple[str, ...]:
            value = data.get(key)
            if not isinstance(value, list):
                return ()
            return tuple(escape_controls(v) for v in value if isinstance(v, str))

        return cls(
            lines=texts("lines"),
            next=number("next"),
            pod=text("pod"),
            container=text("container"),
            containers=texts("containers"),
            dropped=number("dropped"),
            skipped=number("skipped"),
            error=text("error"),
        )


ClientFor = Callable[[ForwardSnapshot], Awaitable[KubeClient]]


class PodLogTail:
    """One forward's pod log, followed (see the module docstring)."""

    def __init__(
        self,
        snapshot: Callable[[], ForwardSnapshot],
        client_for: ClientFor,
        container: str | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._snapshot = snapshot
        self._client_for = client_for
        self._clock = clock
        self.wanted = container  # None: the container serving the forwarded port
        self.lines: deque[str] = deque(maxlen=MAX_LINES)
        self.total = 0  # lines ever kept: the sequence number of the next one
        self.dropped = 0
        self.pod = ""
        self.uid = ""
        self.container = ""
        self.containers: tuple[str, ...] = ()
        self.error = ""
        self.last_read = clock()
        self._poke = asyncio.Event()
        self._news = asyncio.Event()
        self._window = 0.0  # the second the budget counts in
        self._taken = 0  # lines read as text in that second
        self._task = asyncio.create_task(self._run(), name="pod-log-tail")

    # -- what readers see ---------------------------------------------------------------------

    def page(self, after: int, limit: int = PAGE_LINES) -> PodLogPage:
        """The lines after line `after` (0, or one this tail never gave: the latest ones),
        at most `limit`; the ones between that the reader will never see are `skipped`."""
        self.last_read = self._clock()
        first = self.total - len(self.lines)
        latest = max(first, self.total - limit)
        if 0 < after <= self.total:
            start = max(after, latest)
            skipped = start - after
        else:
            start, skipped = latest, 0
        return PodLogPage(
            lines=tuple(self.lines)[start - first :],
            next=self.total,
            pod=self.pod,
            container=self.container,
            containers=self.containers,
            dropped=self.dropped,
            skipped=skipped,
            error=self.error,
        )

    async def wait_news(self, after: int, within: float) -> None:
        """Return when there are lines after `after` (or something else changed), or after
        `within` seconds."""
        if self.total > after or within <= 0:
            return
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(within):
                await self._news.wait()

    def poke(self) -> None:
        """The forward changed: look at its pod again."""
        self._poke.set()

    async def close(self) -> None:
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)

    # -- the tail itself ------------------------------------------------------------------------

    def _tell(self) -> None:
        self._news.set()
        self._news = asyncio.Event()

    def _append(self, line: str) -> None:
        self.lines.append(line)
        self.total += 1

    def _note(self, text: str) -> None:
        self._append(f"── {text} ──")
        self._tell()

    def _set_error(self, text: str) -> None:
        if text != self.error:
            self.error = text
            self._tell()

    async def _run(self) -> None:
        try:
            await self._loop()
        except Exception as exc:  # a bug here must not go unnoticed, nor take anything down
            log.exception("the pod log tail failed")
            self._set_error(f"the pod log stopped: internal error {exc!r}")

    async def _loop(self) -> None:
        fresh = True  # the next stream starts with the pod's last lines
        while True:
            self._poke.clear()
            try:
                snap = self._snapshot()
            except KeyError:
                return
            if not snap.pod:
                self._set_error(f"the forward has no pod yet ({snap.state.value})")
                await self._poke.wait()
                continue
            if snap.pod != self.pod:
                if self.pod:
                    self._note(f"pod {snap.pod} (the forward moved from {self.pod})")
                self.pod, self.container, self.containers, fresh = snap.pod, "", (), True
            try:
                ended = await self._follow(snap, fresh)
            except PortfwdError as exc:
                self._set_error(str(exc))
                await self._pause(RETRY_ERROR)
                fresh = True
                continue
            if ended:  # the stream ended: a container restart, or the pod is going
                self._note(f"the log of pod {self.pod} ended; following again")
                await self._pause(RETRY)
                fresh = False

    async def _pause(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self._poke.wait()

    async def _follow(self, snap: ForwardSnapshot, fresh: bool) -> bool:
        """Follow the pod's log until it ends (True) or the forward moves elsewhere, or
        another container is wanted (False)."""
        client = await self._client_for(snap)
        pod = await client.get_pod(snap.namespace, snap.pod)
        self.containers = tuple(c.name for c in pod.containers)
        container = self._container(pod.containers, snap.remote_port)
        if container != self.container:
            if self.container:
                self._note(f"container {container}")
            self.container, fresh = container, True
        self._set_error("")
        reader = asyncio.create_task(
            self._read(client, snap.namespace, snap.pod, container, TAIL_LINES if fresh else 0),
            name="pod-log-reader",
        )
        try:
            while True:
                poked = asyncio.create_task(self._poke.wait())
                done, _ = await asyncio.wait({reader, poked}, return_when=asyncio.FIRST_COMPLETED)
                poked.cancel()
                if reader in done:
                    reader.result()  # its error, if any
                    return True
                self._poke.clear()
                try:
                    now = self._snapshot()
                except KeyError:
                    return False
                if now.pod != snap.pod or (self.wanted or container) != container:
                    return False
        finally:
            reader.cancel()
            await asyncio.gather(reader, return_exceptions=True)

    def _container(self, containers: Sequence[Container], port: int) -> str:
        names = [c.name for c in containers]
        if self.wanted is not None and self.wanted in names:
            return self.wanted
        for c in containers:  # the one that declares the forwarded port
            if any(p.container_port == port for p in c.ports):
                return c.name
        return names[0] if names else ""

    async def _read(self, client: KubeClient, ns: str, pod: str, container: str, tail: int) -> None:
        lines = LineSplitter()
        async for chunk in follow_pod_log(client, ns, pod, container or None, tail_lines=tail):
            now = self._clock()
            if now - self._window >= 1.0:
                self._window, self._taken = now, 0
            if self._taken >= LINE_BUDGET:
                self.dropped += lines.skip(chunk)
                continue
            got = lines.feed(chunk)
            room = LINE_BUDGET - self._taken
            for line in got[:room]:
                self._append(line)
            self._taken += min(len(got), room)
            self.dropped += max(0, len(got) - room)
            if got:
                self._tell()


class PodLogs:
    """Every forward's pod-log tail, started by the first read and stopped when idle."""

    def __init__(
        self,
        snapshot_of: Callable[[str], ForwardSnapshot],
        client_for: ClientFor,
        subscribe: Callable[[], Any],
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._snapshot_of = snapshot_of
        self._client_for = client_for
        self._subscribe = subscribe
        self._clock = clock
        self.tails: dict[str, PodLogTail] = {}
        self._watcher: asyncio.Task[None] | None = None
        self._reaper: asyncio.Task[None] | None = None

    async def read(
        self,
        forward_id: str,
        container: str | None = None,
        after: int = 0,
        wait: float = 0.0,
        limit: int = PAGE_LINES,
    ) -> PodLogPage:
        """The lines after `after` (0: the latest ones), waiting up to `wait` seconds for
        some; `container` switches the tail to another container of the pod. KeyError for
        an unknown forward."""
        self._snapshot_of(forward_id)  # KeyError first
        tail = self.tails.get(forward_id)
        if tail is None:
            tail = self.tails[forward_id] = PodLogTail(
                lambda: self._snapshot_of(forward_id),
                self._client_for,
                container,
                clock=self._clock,
            )
            self._start()
        elif container and container != tail.wanted:
            tail.wanted = container
            tail.poke()
        tail.last_read = self._clock()
        await tail.wait_news(after, min(max(wait, 0.0), MAX_WAIT))
        return tail.page(after, max(1, min(limit, PAGE_LINES)))

    def _start(self) -> None:
        if self._watcher is None:
            self._watcher = asyncio.create_task(self._watch(), name="pod-log-watch")
        if self._reaper is None:
            self._reaper = asyncio.create_task(self._reap(), name="pod-log-reaper")

    async def _watch(self) -> None:
        """Pokes a tail whenever its forward changes (it may have moved to another pod)."""
        subscription = self._subscribe()
        try:
            async for event in subscription:
                if isinstance(event, ForwardChanged):
                    tail = self.tails.get(event.snapshot.id)
                    if tail is not None:
                        tail.poke()
                elif isinstance(event, ForwardRemoved):
                    await self.forget(event.forward_id)
                elif isinstance(event, Lagged):
                    for tail in self.tails.values():
                        tail.poke()
        finally:
            subscription.close()

    async def _reap(self) -> None:
        """Stops the tails nobody reads; ends (and is started again) when there are none."""
        try:
            while self.tails:
                await asyncio.sleep(IDLE_STOP / 4)
                now = self._clock()
                for fid, tail in list(self.tails.items()):
                    if now - tail.last_read > IDLE_STOP:
                        await self.forget(fid)
        finally:
            if self._reaper is asyncio.current_task():
                self._reaper = None

    async def forget(self, forward_id: str) -> None:
        tail = self.tails.pop(forward_id, None)
        if tail is not None:
            await tail.close()

    async def close(self) -> None:
        for task in (self._watcher, self._reaper):
            if task is not None:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        self._watcher = self._reaper = None
        for fid in list(self.tails):
            await self.forget(fid)
