"""The engine on an event loop of its own, in a thread of its own, behind `EngineAPI`.

Without a daemon the dashboard and the forwards share one process. On one event loop a
Textual repaint delays every byte (with 50 active forwards an echo's p99 went from 4-6 ms
headless to 146-703 ms under the dashboard). So the in-process engine runs on its own loop
in an `EngineThread`, and the front end holds a `ThreadedEngine`: the same seam as
`portfwd.daemon.client.RemoteEngine`, with a thread boundary instead of a socket.

- **Changes** (`add`, `start`, ...) are coroutines scheduled on the engine's loop with
  `asyncio.run_coroutine_threadsafe`; the caller awaits the result on its own loop.
- **Reads** (`snapshot`, `get`, `logs`) answer from a mirror on the caller's side, kept by
  the engine's events: no read touches engine objects from the wrong thread.
- **Events** cross in batches: the engine side appends to an outbox and schedules at most one
  drain on the front end's loop (`call_soon_threadsafe`). A stats tick replaces the pending
  one of its forward, and an outbox that grows past `OUTBOX_LIMIT` (a front end that stopped
  draining) is replaced by a fresh snapshot and a `Lagged` marker: the engine never waits for
  the screen and its memory stays bounded. Only views lose news this way, never a byte.
- A change's reply reaches the caller after the events it caused, so a read right after an
  `await engine.add(...)` sees the new forward.

The GIL is still shared: Python code of the screen and of the pumps interleave, and a pump
that has bytes to move waits for a switch interval (1 ms here, see `SWITCH_INTERVAL`), not a
whole repaint. That halves the screen's toll but does not remove it: measured, only a
separate process (the dashboard attached to a daemon) matches headless forwarding.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import os
import sys
import threading
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any, TypeVar

from portfwd.engine.bus import EventBus, Subscription
from portfwd.engine.events import Event, Lagged, StatsTick
from portfwd.engine.manager import Manager
from portfwd.engine.mirror import SnapshotMirror
from portfwd.engine.model import ConnectionInfo, ForwardSnapshot, ForwardSpec, LogEntry
from portfwd.engine.podlogs import PodLogPage
from portfwd.eventloop import loop_factory, quiet_transport_errors

T = TypeVar("T")

OUTBOX_LIMIT = 10_000  # events waiting for the front end before they become one resync
READ_TIMEOUT = 2.0  # seconds a read that must ask the engine (open connections) waits
START_TIMEOUT = 30.0
# How long the screen's thread may hold the GIL while a pump waits for it. Python's 5 ms let
# a repaint delay every echo; at 1 ms, with 50 forwards each echoing every 50 ms beside the
# dashboard, the p99 went from 4.3x to 2.1x headless's and the echoes delivered from 53 % to
# 73 % (bench/dashboard_echo.py, one interleaved run). The env variable is for that bench.
SWITCH_INTERVAL = 0.001
SWITCH_INTERVAL_ENV = "PORTFWD_SWITCH_INTERVAL"


class EngineThread:
    """An event loop (uvloop when installed) running in a daemon thread until `stop()`."""

    def __init__(self, name: str = "portfwd-engine") -> None:
        self._name = name
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopped: asyncio.Event | None = None
        self._ready = threading.Event()
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            raise RuntimeError("the engine thread is not running")
        return self._loop

    def start(self) -> None:
        """Start the thread and return once its loop runs."""
        if self._thread is not None:
            return
        self._thread = threading.Thread(target=self._main, name=self._name, daemon=True)
        self._thread.start()
        self._ready.wait(START_TIMEOUT)
        if self._error is not None:
            raise self._error
        if self._loop is None:
            raise RuntimeError("the engine thread did not start")

    def _main(self) -> None:
        try:
            with asyncio.Runner(loop_factory=loop_factory()) as runner:
                runner.get_loop().set_exception_handler(quiet_transport_errors)  # as run()'s
                runner.run(self._serve())
        except BaseException as exc:  # reported to start(); a thread has nowhere else
            self._error = exc
            self._ready.set()

    async def _serve(self) -> None:
        self._stopped = asyncio.Event()
        self._loop = asyncio.get_running_loop()
        self._ready.set()
        await self._stopped.wait()
        # asyncio.Runner cancels and awaits whatever task is left when this returns.

    def submit(self, coro: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    async def call(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run `coro` on the engine's loop; await its result on the caller's loop. Cancelling
        the caller cancels it there too."""
        return await asyncio.wrap_future(self.submit(coro))

    def stop(self, timeout: float = 10.0) -> None:
        """End the loop (its leftover tasks are cancelled and awaited) and join the thread.
        Blocking: from a loop, call it through `asyncio.to_thread`."""
        thread, loop, stopped = self._thread, self._loop, self._stopped
        if thread is None:
            return
        if loop is not None and stopped is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):  # closed meanwhile
                loop.call_soon_threadsafe(stopped.set)
        thread.join(timeout)
        self._thread = None


@dataclass
class _Reset:
    """The outbox overflowed: the mirror starts again from these snapshots."""

    snapshots: list[ForwardSnapshot]


class _Outbox:
    """Events on their way from the engine's thread to the front end's loop (thread-safe)."""

    def __init__(self, deliver: Callable[[list[Event | _Reset | None]], None]) -> None:
        self._lock = threading.Lock()
        self._items: list[Event | _Reset | None] = []
        self._stats_at: dict[str, int] = {}  # forward id -> index of its pending StatsTick
        self._scheduled = False
        self._deliver = deliver

    def put(self, event: Event, reset: Callable[[], list[ForwardSnapshot]]) -> bool:
        """Queue `event`; True when the caller must schedule a drain."""
        with self._lock:
            if isinstance(event, StatsTick):
                at = self._stats_at.get(event.forward_id)
                if at is not None:
                    self._items[at] = None  # the newer counters replace the older
            if len(self._items) >= OUTBOX_LIMIT:  # holes count: the list itself is bounded
                self._items = [_Reset(reset())]
                self._stats_at.clear()
            if isinstance(event, StatsTick):
                self._stats_at[event.forward_id] = len(self._items)
            self._items.append(event)
            if self._scheduled:
                return False
            self._scheduled = True
            return True

    def take(self) -> list[Event | _Reset | None]:
        with self._lock:
            items, self._items = self._items, []
            self._stats_at.clear()
            self._scheduled = False
        return items

    def drain(self) -> None:
        self._deliver(self.take())


class ThreadedEngine:
    """An engine on an `EngineThread`, behind the `EngineAPI` (see the module docstring).

    Build it with `open()` on the front end's running loop; `shutdown()` stops every forward
    (closing its listeners), then the thread."""

    def __init__(self, host: EngineThread, manager: Manager) -> None:
        self._host = host
        self._manager = manager  # touched on the engine's loop only
        self._front = asyncio.get_running_loop()
        self._mirror = SnapshotMirror()  # read and written on the front end's loop only
        self._bus = EventBus()
        self._outbox = _Outbox(self._apply_all)
        self._feed: Subscription | None = None  # the engine-side subscription
        self._pump: asyncio.Task[None] | None = None  # on the engine's loop
        self._closed = False

    @classmethod
    async def open(
        cls, make_manager: Callable[[], Manager], *, host: EngineThread | None = None
    ) -> ThreadedEngine:
        """Start a thread (or use `host`), build the Manager on its loop, and mirror it."""
        host = host or EngineThread()
        try:
            switch = float(os.environ.get(SWITCH_INTERVAL_ENV, "") or SWITCH_INTERVAL)
        except ValueError:
            switch = SWITCH_INTERVAL
        sys.setswitchinterval(switch)
        await asyncio.to_thread(host.start)

        async def build() -> Manager:
            return make_manager()

        try:
            manager = await host.call(build())
            engine = cls(host, manager)
            await host.call(engine._attach())
        except BaseException:
            await asyncio.to_thread(host.stop)
            raise
        return engine

    # -- the engine's side --------------------------------------------------------------------

    async def _attach(self) -> None:
        """Subscribe first, then read the snapshot and logs: nothing falls between."""
        manager = self._manager
        self._feed = manager.subscribe(maxsize=OUTBOX_LIMIT)
        snaps = manager.snapshot()
        self._mirror.reset(snaps)
        self._mirror.load_logs(None, manager.logs(None))
        for snap in snaps:
            self._mirror.load_logs(snap.id, manager.logs(snap.id))
        self._pump = asyncio.create_task(self._forward_events(), name="engine-host-events")

    async def _forward_events(self) -> None:
        feed = self._feed
        assert feed is not None
        async for event in feed:
            self._post(event)
            self._pass_on()  # whatever else is queued, in one batch

    def _pass_on(self) -> None:
        """Move what the engine-side subscription holds into the outbox (engine loop only)."""
        feed = self._feed
        if feed is None:
            return
        while (event := feed.get_nowait()) is not None:
            self._post(event)

    def _post(self, event: Event) -> None:
        if self._outbox.put(event, self._manager.snapshot):
            with contextlib.suppress(RuntimeError):  # the front end's loop is closed: no one reads
                self._front.call_soon_threadsafe(self._outbox.drain)

    async def _run(self, coro: Coroutine[Any, Any, T]) -> T:
        """On the engine's loop: `coro`, then its events into the outbox, so the caller's
        reply is scheduled after them (both cross by `call_soon_threadsafe`, in order)."""
        try:
            return await coro
        finally:
            self._pass_on()

    async def _call(self, coro: Coroutine[Any, Any, T]) -> T:
        return await self._host.call(self._run(coro))

    # -- the front end's side ------------------------------------------------------------------

    def _apply_all(self, items: list[Event | _Reset | None]) -> None:
        for item in items:
            if item is None:
                continue
            if isinstance(item, _Reset):
                self._mirror.reset(item.snapshots)
                self._bus.publish(Lagged())
                continue
            self._apply(item)

    def _apply(self, event: Event) -> None:
        if isinstance(event, Lagged):
            # The engine-side subscription lost events: read the engine's truth again.
            self._resync()
            return
        self._mirror.apply(event)
        self._bus.publish(event)

    def _resync(self) -> None:
        if self._closed:
            return
        future = self._host.submit(self._snapshot_now())

        def done(f: concurrent.futures.Future[list[ForwardSnapshot]]) -> None:
            if not f.cancelled() and f.exception() is None:
                with contextlib.suppress(RuntimeError):  # the front end's loop is closed
                    self._front.call_soon_threadsafe(self._outbox_reset, f.result())

        future.add_done_callback(done)

    async def _snapshot_now(self) -> list[ForwardSnapshot]:
        return self._manager.snapshot()

    def _outbox_reset(self, snaps: list[ForwardSnapshot]) -> None:
        self._apply_all([_Reset(snaps)])

    # -- EngineAPI: reads -------------------------------------------------------------------

    def subscribe(self, maxsize: int = 1000) -> Subscription:
        return self._bus.subscribe(maxsize)

    def snapshot(self) -> list[ForwardSnapshot]:
        return self._mirror.snapshot()

    def get(self, forward_id: str) -> ForwardSnapshot:
        return self._mirror.forwards[forward_id]

    def logs(self, forward_id: str | None) -> list[LogEntry]:
        if forward_id is not None and forward_id not in self._mirror.forwards:
            raise KeyError(forward_id)
        return self._mirror.log_lines(forward_id)

    def open_connections(self, forward_id: str) -> list[ConnectionInfo]:
        """Asked of the engine (they are not streamed); the engine's loop answers within
        milliseconds, as it never waits for the screen. KeyError for an unknown id."""
        if forward_id not in self._mirror.forwards or self._closed:
            raise KeyError(forward_id)

        async def ask() -> list[ConnectionInfo]:
            return self._manager.open_connections(forward_id)

        try:
            return self._host.submit(ask()).result(READ_TIMEOUT)
        except (concurrent.futures.TimeoutError, RuntimeError):
            return []

    # -- EngineAPI: changes -----------------------------------------------------------------

    async def add(
        self, spec: ForwardSpec, *, start: bool = True, forward_id: str | None = None
    ) -> str:
        return await self._call(self._manager.add(spec, start=start, forward_id=forward_id))

    async def start(self, forward_id: str) -> ForwardSnapshot:
        return await self._call(self._manager.start(forward_id))

    async def stop(self, forward_id: str) -> None:
        await self._call(self._manager.stop(forward_id))

    async def restart(self, forward_id: str) -> ForwardSnapshot:
        return await self._call(self._manager.restart(forward_id))

    async def update(self, forward_id: str, spec: ForwardSpec) -> None:
        await self._call(self._manager.update(forward_id, spec))

    async def set_reconnect(self, forward_id: str, enabled: bool) -> None:
        await self._call(self._manager.set_reconnect(forward_id, enabled))

    async def set_http_log(self, forward_id: str, enabled: bool) -> None:
        await self._call(self._manager.set_http_log(forward_id, enabled))

    async def pod_log(
        self, forward_id: str, container: str | None = None, after: int = 0, wait: float = 0
    ) -> PodLogPage:
        return await self._host.call(self._manager.pod_log(forward_id, container, after, wait))

    async def remove(self, forward_id: str) -> None:
        await self._call(self._manager.remove(forward_id))

    async def shutdown(self) -> None:
        """Stop every forward (their listeners close), the event pump, then the thread."""
        if self._closed:
            return
        self._closed = True
        try:
            await self._host.call(self._close_engine_side())
        finally:
            await asyncio.to_thread(self._host.stop)
            self._outbox.take()
            self._bus.close()

    async def _close_engine_side(self) -> None:
        await self._manager.shutdown()
        if self._feed is not None:
            self._feed.close()
        pump, self._pump = self._pump, None
        if pump is not None:
            pump.cancel()
            await asyncio.gather(pump, return_exceptions=True)
