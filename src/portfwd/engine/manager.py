"""The set of forwards, and the only way front ends change them.

Front ends call the Manager's methods and read `snapshot()` / `logs()`; they learn about
changes through a `Subscription` (bounded, see `bus.py`). Counters change on every chunk, so
stats are not published per change: a ticker publishes one `StatsTick` per changed forward
every :data:`STATS_INTERVAL` seconds, and only runs while some counter changed (no wake-ups
when idle).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
import uuid
from collections import OrderedDict, deque
from dataclasses import replace
from pathlib import Path

from portfwd.engine.bus import EventBus, Subscription
from portfwd.engine.clients import ClientPool, ContextChange
from portfwd.engine.events import (
    Event,
    ForwardAdded,
    ForwardChanged,
    ForwardRemoved,
    LogLine,
    StatsTick,
)
from portfwd.engine.forward import LOG_SIZE, Forward
from portfwd.engine.httplog_files import ENV as HTTP_LOG_DIR_ENV
from portfwd.engine.httplog_files import HttpLogFiles
from portfwd.engine.informers import InformerPool
from portfwd.engine.memory import MemoryKeeper
from portfwd.engine.model import (
    ConnectionInfo,
    ForwardSnapshot,
    ForwardSpec,
    ForwardState,
    LogEntry,
    LogKind,
    LogLevel,
    check_spec,
)
from portfwd.engine.podlogs import PodLogPage, PodLogs
from portfwd.engine.traffic import RateSampler, current_second
from portfwd.engine.wake import WakeDetector
from portfwd.errors import InputError
from portfwd.kube.client import KubeClient
from portfwd.kube.targets import printable
from portfwd.tunnel.pool import TunnelPool
from portfwd.tunnel.pump import V4_EOF_IDLE_LIMIT

__all__ = ["STATS_INTERVAL", "Manager", "Subscription"]

log = logging.getLogger(__name__)

STATS_INTERVAL = 0.5
SHUTDOWN_CLIENTS_TIMEOUT = 1.0


class Manager:
    def __init__(
        self,
        *,
        clients: ClientPool | None = None,
        kubeconfig: str | None = None,
        tunnels: TunnelPool | None = None,
        ping_interval: float = 30.0,
        follow: bool = True,
        detect_wake: bool = True,
        v4_eof_idle_limit: float = V4_EOF_IDLE_LIMIT,
        http_log_dir: str | None = None,
    ) -> None:
        """`ping_interval`: seconds between pings on every tunnel (SPDY PINGs on sessions,
        WebSocket pings on v4; 0: none), so proxies in front of the API server do not cut
        idle ones and a dead one is noticed. `tunnels`: the pool of tunnel sessions (one
        per Manager; tests pass their own). `follow`: watch each target (off only for tests
        with clients that cannot watch). `detect_wake`: re-validate every forward when the
        machine wakes from sleep. `v4_eof_idle_limit`: on the v4 protocol (no half-close),
        how long a connection whose client finished sending waits for more from the pod.
        `http_log_dir` (default: $PORTFWD_HTTP_LOG_DIR): the HTTP request log also goes to
        a file per forward there (engine/httplog_files.py)."""
        self._v4_eof_idle_limit = v4_eof_idle_limit
        self.clients = (
            clients if clients is not None else ClientPool(kubeconfig, ping_interval=ping_interval)
        )
        self.tunnels = tunnels if tunnels is not None else TunnelPool(ping_interval=ping_interval)
        self.informers: InformerPool | None = InformerPool() if follow else None
        self._wake_detector = WakeDetector(self._on_wake) if detect_wake else None
        self._bus = EventBus()
        self._forwards: OrderedDict[str, Forward] = OrderedDict()
        self._start_tasks: dict[str, asyncio.Task[None]] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._app_log: deque[LogEntry] = deque(maxlen=LOG_SIZE)
        self._dirty: set[str] = set()
        self._ticker: asyncio.Task[None] | None = None
        # One per engine: a rate sample a second while bytes move (engine/traffic.py).
        self.sampler = RateSampler(lambda: self._forwards.values())
        self.memory = MemoryKeeper()
        self.pod_logs = PodLogs(self.get, self._pod_log_client, self.subscribe)
        self.http_files: HttpLogFiles | None = None
        self._closed = False
        directory = http_log_dir or os.environ.get(HTTP_LOG_DIR_ENV)
        if directory:
            self._write_http_logs(Path(directory).expanduser())
        subscribe = getattr(self.clients, "subscribe", None)  # test pools may lack it
        self._unsubscribe = subscribe(self._context_changed) if subscribe is not None else None

    # -- observation ------------------------------------------------------------------------

    def subscribe(self, maxsize: int = 1000) -> Subscription:
        return self._bus.subscribe(maxsize)

    def snapshot(self) -> list[ForwardSnapshot]:
        return [f.snapshot() for f in self._forwards.values()]

    def state_counts(self) -> dict[str, int]:
        """How many forwards are in each state, without building their snapshots (the
        daemon's hello answers it on every `portfwd ls`)."""
        counts: dict[str, int] = {}
        for fwd in self._forwards.values():
            counts[fwd.state.value] = counts.get(fwd.state.value, 0) + 1
        return counts

    def get(self, forward_id: str) -> ForwardSnapshot:
        return self._forwards[forward_id].snapshot()

    def logs(self, forward_id: str | None) -> list[LogEntry]:
        if forward_id is None:
            return list(self._app_log)
        return list(self._forwards[forward_id].log)

    def connections(self, forward_id: str) -> int:
        """Open connections of a forward right now."""
        return len(self._forwards[forward_id].connections)

    def open_connections(self, forward_id: str) -> list[ConnectionInfo]:
        """Each open connection of a forward with its own byte counters, oldest first."""
        return self._forwards[forward_id].connections.infos(current_second())

    async def pod_log(
        self, forward_id: str, container: str | None = None, after: int = 0, wait: float = 0
    ) -> PodLogPage:
        """The log of the pod the forward uses now, after line `after` (see podlogs.py)."""
        return await self.pod_logs.read(forward_id, container, after, wait)

    def _write_http_logs(self, directory: Path) -> None:
        def name_of(fid: str) -> str | None:
            fwd = self._forwards.get(fid)
            return None if fwd is None else fwd.spec.name or fwd.id

        files = HttpLogFiles(directory, name_of)
        problem = files.start()
        if problem:
            self.log(LogLevel.ERROR, problem)
        else:
            self.http_files = files

    def _publish(self, event: Event) -> None:
        self._bus.publish(event)
        if self.http_files is not None:
            self.http_files.offer(event)

    async def _pod_log_client(self, snap: ForwardSnapshot) -> KubeClient:
        return await self.clients.get(snap.context or snap.spec.context, snap.spec.kubeconfig)

    def log(self, level: LogLevel, message: str, kind: LogKind = LogKind.NOTE) -> None:
        """An app-wide log line (not about one forward)."""
        entry = LogEntry(ts=time.time(), level=level, message=message, kind=kind)
        self._app_log.append(entry)
        self._bus.publish(LogLine(None, entry))

    # -- changes ----------------------------------------------------------------------------

    async def add(
        self, spec: ForwardSpec, *, start: bool = True, forward_id: str | None = None
    ) -> str:
        self._check_open()
        fid = forward_id or uuid.uuid4().hex[:8]
        if fid in self._forwards:
            raise ValueError(f"forward id {fid!r} already exists")
        self._check_name(spec, fid)
        fwd = Forward(
            fid,
            spec,
            clients=self.clients,
            publish=self._publish,
            on_stats=self._mark_dirty,
            tunnels=self.tunnels,
            v4_eof_idle_limit=self._v4_eof_idle_limit,
            informers=self.informers,
        )
        if self._wake_detector is not None:
            self._wake_detector.start()
        self._forwards[fid] = fwd
        self._locks[fid] = asyncio.Lock()
        self._bus.publish(ForwardAdded(fwd.snapshot()))
        if start:
            await self.start(fid)
        return fid

    async def start(self, forward_id: str) -> ForwardSnapshot:
        """Start (or join a start in progress); returns once ACTIVE, ERROR or stopped."""
        self._check_open()
        fwd = self._forwards[forward_id]
        task = self._start_tasks.get(forward_id)
        if task is None:
            if fwd.wanted:
                return fwd.snapshot()
            async with self._locks[forward_id]:
                task = self._start_tasks.get(forward_id)
                if task is None:
                    if fwd.wanted:  # started while we waited for the lock
                        return fwd.snapshot()
                    task = asyncio.create_task(fwd.start(), name=f"start-{forward_id}")
                    self._start_tasks[forward_id] = task
                    task.add_done_callback(lambda t: self._start_done(forward_id, t))
        # The start task belongs to the Manager: a caller giving up does not cancel it, and a
        # stop() cancelling it does not raise here.
        await asyncio.wait({task})
        return fwd.snapshot()

    def _start_done(self, forward_id: str, task: asyncio.Task[None]) -> None:
        if self._start_tasks.get(forward_id) is task:
            del self._start_tasks[forward_id]
        if not task.cancelled():
            task.exception()  # Forward.start handles its errors; mark retrieved anyway

    async def stop(self, forward_id: str, reason: str = "") -> None:
        """Stop a forward: cancels a start in progress, closes listeners and connections."""
        fwd = self._forwards[forward_id]
        task = self._start_tasks.get(forward_id)
        if task is not None:
            task.cancel()
            await asyncio.wait({task})
        async with self._locks[forward_id]:
            await fwd.stop(reason)

    async def restart(self, forward_id: str) -> ForwardSnapshot:
        """Stop and start again: resolves afresh and retries at once (no backoff)."""
        await self.stop(forward_id, "restarting")
        if self.informers is not None:
            self.informers.retry_now()
        return await self.start(forward_id)

    async def set_reconnect(self, forward_id: str, enabled: bool) -> None:
        """Turn auto-reconnect on or off without a restart. Turned off while reconnecting,
        the forward gives up at once (kubectl's behaviour); turned on, it retries."""
        fwd = self._forwards[forward_id]
        if fwd.spec.reconnect == enabled:
            return
        fwd.spec = replace(fwd.spec, reconnect=enabled)
        fwd.add_log(
            LogLevel.INFO, "auto-reconnect " + ("on" if enabled else "off"), LogKind.SETTING
        )
        self._bus.publish(ForwardChanged(fwd.snapshot()))
        fwd.wake()

    async def set_http_log(self, forward_id: str, enabled: bool) -> None:
        """Turn the HTTP request log on or off without a restart: connections opened from
        now on are read (or not); open ones keep what they had."""
        fwd = self._forwards[forward_id]
        if fwd.spec.http_log == enabled:
            return
        fwd.spec = replace(fwd.spec, http_log=enabled)
        fwd.add_log(LogLevel.INFO, "HTTP log " + ("on" if enabled else "off"), LogKind.SETTING)
        self._bus.publish(ForwardChanged(fwd.snapshot()))

    def revalidate_all(self, reason: str) -> None:
        """Check every running forward again now: new watch connections, a tunnel probe."""
        running = [f for f in self._forwards.values() if f.wanted]
        if not running:
            return
        self.log(LogLevel.INFO, f"re-validating {len(running)} forward(s): {reason}")
        renew = getattr(self.clients, "renew_connections", None)  # test pools may lack it
        if renew is not None:
            renew()
        if self.informers is not None:
            self.informers.restart_all()  # list and watch again over the new connections
        for fwd in running:
            fwd.revalidate(reason)

    def _context_changed(self, change: ContextChange) -> None:
        """A context's kubeconfig changed on disk: its forwards move to the new client (or
        show why it cannot be loaded); forwards of other contexts never hear of it."""
        moved = sum(f.context_changed(change) for f in self._forwards.values())
        context = printable(change.context)
        if change.error:
            self.log(
                LogLevel.ERROR,
                f"kubeconfig changed: context {context} cannot be loaded: {change.error}",
            )
        elif change.reloaded:
            assert change.new is not None
            server = printable(change.new.conn.server)
            self.log(
                LogLevel.INFO,
                f"kubeconfig changed: context {context} reloaded (server {server})"
                + (f"; {moved} forward(s) follow it" if moved else ""),
            )
        else:
            self.log(LogLevel.INFO, f"kubeconfig fixed: context {context} loads again")

    def _on_wake(self, jump: float) -> None:
        how = "forward" if jump > 0 else "back"
        self.revalidate_all(f"the clock jumped {how} {abs(jump):.0f} s (the machine slept?)")

    async def update(self, forward_id: str, spec: ForwardSpec) -> None:
        """Replace the spec; a forward that was running (or starting) is restarted with it,
        unless only its name changed (a rename: a label, its connections stay)."""
        fwd = self._forwards[forward_id]
        self._check_name(spec, forward_id)
        if replace(spec, name=fwd.spec.name) == fwd.spec:
            check_spec(spec)
            fwd.spec = spec
            self._bus.publish(ForwardChanged(fwd.snapshot()))
            return
        running = (
            fwd.wanted or fwd.state is ForwardState.STARTING or (forward_id in self._start_tasks)
        )
        if running:
            await self.stop(forward_id, "updated")
        fwd.spec = spec
        self._bus.publish(ForwardChanged(fwd.snapshot()))
        if running:
            await self.start(forward_id)

    def _check_name(self, spec: ForwardSpec, forward_id: str) -> None:
        """Names are how scripts and `portfwd stop NAME` find a forward: one each."""
        if spec.name is None:
            return
        for other in self._forwards.values():
            if other.id != forward_id and other.spec.name == spec.name:
                raise InputError(
                    f"the name {spec.name!r} is already used by forward {other.id}"
                    f" ({other.spec.target}); pick another --name"
                )
        if spec.name in self._forwards and spec.name != forward_id:
            raise InputError(
                f"the name {spec.name!r} is the id of another forward; pick another --name"
            )

    async def remove(self, forward_id: str) -> None:
        if forward_id not in self._forwards:
            return
        await self.stop(forward_id, "removed")
        await self.pod_logs.forget(forward_id)
        self._forwards.pop(forward_id, None)
        self._locks.pop(forward_id, None)
        self._dirty.discard(forward_id)
        self._bus.publish(ForwardRemoved(forward_id))

    async def shutdown(self) -> None:
        """Close every listener, connection, task and client, fast (the app is exiting)."""
        if self._closed:
            return
        self._closed = True
        if self._unsubscribe is not None:
            self._unsubscribe()
        starts = list(self._start_tasks.values())
        for task in starts:
            task.cancel()
        if starts:
            await asyncio.wait(starts)
        forwards = list(self._forwards.values())
        results = await asyncio.gather(*(f.shutdown() for f in forwards), return_exceptions=True)
        for fwd, result in zip(forwards, results, strict=True):
            if isinstance(result, Exception):  # a bug: the others still shut down
                log.error("shutting down forward %s failed", fwd.id, exc_info=result)
        if self._wake_detector is not None:
            await self._wake_detector.stop()
        await self.pod_logs.close()
        if self.http_files is not None:
            await asyncio.to_thread(self.http_files.close)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(SHUTDOWN_CLIENTS_TIMEOUT):
                await self.tunnels.close()
        if self.informers is not None:
            await self.informers.close()
        if self._ticker is not None:
            self._ticker.cancel()
            await asyncio.wait({self._ticker})
            self._ticker = None
        await self.sampler.close()
        self._flush_stats()
        await self.memory.close()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(SHUTDOWN_CLIENTS_TIMEOUT):
                await self.clients.close()
        self._bus.close()

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError("the Manager is shut down")

    # -- stats coalescing -------------------------------------------------------------------

    def _mark_dirty(self, forward_id: str) -> None:
        self._dirty.add(forward_id)
        self.sampler.poke()
        if self._ticker is None and not self._closed:
            self._ticker = asyncio.create_task(self._tick(), name="stats-ticker")

    def _flush_stats(self) -> bool:
        dirty, self._dirty = self._dirty, set()
        for fid in dirty:
            fwd = self._forwards.get(fid)
            if fwd is not None:
                self._bus.publish(StatsTick(fid, fwd.stats()))
        if dirty:
            forwards = self._forwards.values()
            self.memory.note(
                sum(f.connections.bytes_in + f.connections.bytes_out for f in forwards),
                sum(len(f.connections) for f in forwards),
            )
        return bool(dirty)

    async def _tick(self) -> None:
        try:
            while True:
                await asyncio.sleep(STATS_INTERVAL)
                if not self._flush_stats():
                    return  # idle: the next counter change starts a new ticker
        finally:
            if self._ticker is asyncio.current_task():
                self._ticker = None
