"""The other end of the daemon's socket: `DaemonClient` (requests) and `RemoteEngine`.

`RemoteEngine` is an :class:`~portfwd.engine.api.EngineAPI`, so the dashboard and the CLI
do not care whether their engine runs in-process or in the daemon. Reads (`snapshot`, `get`,
`logs`) answer from a mirror kept current by the daemon's event stream (subscribe first, then
the snapshot: nothing falls between); changes are requests. Its own subscribers get their own
bounded queues (the engine's `EventBus`), so a slow view only lags itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from typing import Any, Self, TypeVar

from portfwd.daemon import ops
from portfwd.daemon import protocol as proto
from portfwd.daemon.paths import DaemonPaths, daemon_paths
from portfwd.daemon.replies import (
    DaemonGone,
    NotRunning,
    hello,
    result,
    unreachable,
    welcome,
)
from portfwd.daemon.sync_client import CONNECT_TIMEOUT
from portfwd.daemon.trust import check_daemon
from portfwd.engine.bus import EventBus, Subscription
from portfwd.engine.events import Event, Lagged
from portfwd.engine.mirror import SnapshotMirror
from portfwd.engine.model import ConnectionInfo, ForwardSnapshot, ForwardSpec, LogEntry
from portfwd.engine.podlogs import PodLogPage
from portfwd.engine.serial import event_from_dict, log_from_dict, snapshot_from_dict
from portfwd.errors import InputError, PortfwdError
from portfwd.safetext import escape_controls

R = TypeVar("R")


class DaemonClient:
    """One connection: hello, then concurrent requests and (after subscribe) events."""

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        paths: DaemonPaths,
    ) -> None:
        self._reader = reader
        self._writer = writer
        self.paths = paths
        self.server: dict[str, Any] = {}  # the daemon's hello: pid, version, socket...
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[Any]] = {}
        self._events: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()
        self._reader_task: asyncio.Task[None] | None = None
        self.lost: str | None = None  # why the connection ended, once it has

    @classmethod
    async def connect(
        cls,
        paths: DaemonPaths | None = None,
        *,
        client: str = "cli",
        within: float = CONNECT_TIMEOUT,
    ) -> DaemonClient:
        paths = paths or daemon_paths()
        try:
            async with asyncio.timeout(within):
                reader, writer = await asyncio.open_unix_connection(
                    str(paths.socket), limit=proto.MAX_REPLY_BYTES
                )
        except (OSError, TimeoutError) as exc:
            raise unreachable(paths, exc) from None
        self = cls(reader, writer, paths)
        try:
            check_daemon(writer.get_extra_info("socket"), paths)  # before anything is sent
            writer.write(hello(client))
            async with asyncio.timeout(within):
                line = await reader.readuntil(b"\n")
            self.server = welcome(proto.decode_line(line))
        except (OSError, asyncio.IncompleteReadError, TimeoutError, proto.ProtocolError):
            writer.close()
            raise NotRunning(f"the portfwd daemon at {paths.socket} did not say hello") from None
        except BaseException:
            writer.close()
            raise
        self._reader_task = asyncio.create_task(self._read_loop(), name="daemon-client-reader")
        return self

    async def _read_loop(self) -> None:
        reason = "the daemon closed the connection"
        try:
            while True:
                line = await self._reader.readuntil(b"\n")
                data = proto.decode_line(line)
                if "event" in data:
                    self._events.put_nowait(data["event"])  # bounded by the daemon's lag
                    continue
                rid = data.get("id")
                future = self._pending.pop(rid, None) if isinstance(rid, int) else None
                if future is None:
                    err = data.get("error")
                    if isinstance(err, dict):  # a protocol error about the connection itself
                        reason = escape_controls(str(err.get("message")))
                    continue
                if not future.done():
                    future.set_result(data)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        except asyncio.LimitOverrunError:
            reason = "the daemon sent a line longer than the client accepts"
        except proto.ProtocolError as exc:
            reason = f"the daemon sent something unreadable: {exc}"
        finally:
            self.lost = reason
            for future in self._pending.values():
                if not future.done():
                    future.set_exception(DaemonGone(f"lost the portfwd daemon: {reason}"))
            self._pending.clear()
            self._events.put_nowait(None)

    async def call(self, op: ops.Op[R], **args: Any) -> R:
        """One operation of the table: its arguments encoded, its reply decoded."""
        return op.decode_result(await self.request(op.name, **op.request_args(**args)))

    async def request(self, op: str, **args: Any) -> Any:
        """A raw request (tests speak the protocol with it); front ends use `call`."""
        if self.lost is not None:
            raise DaemonGone(f"lost the portfwd daemon: {self.lost}")
        rid = next(self._ids)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending[rid] = future
        try:
            self._writer.write(proto.encode({"id": rid, "op": op, "args": args}))
        except (OSError, RuntimeError) as exc:
            self._pending.pop(rid, None)
            raise DaemonGone(f"lost the portfwd daemon: {exc}") from None
        try:
            data = await future
        finally:
            self._pending.pop(rid, None)
        return result(data)

    async def next_event(self) -> dict[str, Any] | None:
        """The next event from the daemon (after `subscribe`), None once the connection ended."""
        return await self._events.get()

    async def close(self) -> None:
        self._writer.close()
        with contextlib.suppress(Exception):
            await self._writer.wait_closed()
        task, self._reader_task = self._reader_task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)


class RemoteEngine:
    """An engine in the daemon, behind the same API as the in-process Manager."""

    def __init__(self, client: DaemonClient) -> None:
        self.client = client
        self._mirror = SnapshotMirror()
        self._connections: dict[str, list[ConnectionInfo]] = {}
        self._bus = EventBus()
        self._task: asyncio.Task[None] | None = None
        self._resync: asyncio.Task[None] | None = None

    @property
    def server(self) -> dict[str, Any]:
        return self.client.server

    @property
    def lost(self) -> str | None:
        return self.client.lost

    @classmethod
    async def attach(
        cls, paths: DaemonPaths | None = None, *, client: str = "dashboard", logs: int = 200
    ) -> Self:
        """Connect, subscribe, and mirror the daemon's forwards (and `logs` recent lines each)."""
        engine = cls(await DaemonClient.connect(paths, client=client))
        try:
            first = await engine.client.call(ops.SUBSCRIBE, logs=logs)
        except BaseException:
            await engine.client.close()
            raise
        engine._load(first)
        engine._task = asyncio.create_task(engine._follow(), name="remote-engine-events")
        return engine

    def _load(self, data: dict[str, Any]) -> None:
        self._mirror.reset(snapshot_from_dict(raw) for raw in data.get("snapshot", []))
        for key, entries in (data.get("logs") or {}).items():
            self._mirror.load_logs(key or None, (log_from_dict(e) for e in entries))

    async def _follow(self) -> None:
        try:
            while True:
                raw = await self.client.next_event()
                if raw is None:
                    return
                try:
                    event = event_from_dict(raw)
                except InputError:
                    continue  # a newer daemon's event: the snapshot still tells the truth
                self._apply(event)
        finally:
            self._bus.close()  # views see their stream end: the daemon is gone

    def _apply(self, event: Event) -> None:
        if isinstance(event, Lagged):
            # The daemon dropped events for us: read its truth again before the views do.
            if self._resync is None or self._resync.done():
                self._resync = asyncio.create_task(self._reload())
            return
        self._mirror.apply(event)
        self._bus.publish(event)

    async def _reload(self) -> None:
        with contextlib.suppress(PortfwdError):
            snaps = await self.client.call(ops.SNAPSHOT_ALL)
            self._mirror.reset(snaps)
        self._bus.publish(Lagged())

    # -- EngineAPI: reads -------------------------------------------------------------------

    def subscribe(self, maxsize: int = 1000) -> Subscription:
        return self._bus.subscribe(maxsize)

    def snapshot(self) -> list[ForwardSnapshot]:
        return self._mirror.snapshot()

    def get(self, forward_id: str) -> ForwardSnapshot:
        return self._mirror.forwards[forward_id]

    def logs(self, forward_id: str | None) -> list[LogEntry]:
        return self._mirror.log_lines(forward_id)

    def open_connections(self, forward_id: str) -> list[ConnectionInfo]:
        """The last fetched list (see `fetch_connections`): the daemon does not stream them."""
        return list(self._connections.get(forward_id, ()))

    async def fetch_connections(self, forward_id: str) -> list[ConnectionInfo]:
        infos = await self.client.call(ops.CONNECTIONS_OF, id=forward_id)
        self._connections[forward_id] = infos
        return infos

    # -- EngineAPI: changes -----------------------------------------------------------------

    def _learn(self, snap: ForwardSnapshot) -> ForwardSnapshot:
        """A reply's snapshot. The mirror follows the event stream only (a reply may overtake
        an older event, never the other way round), except for a forward it has not seen."""
        self._mirror.learn(snap)
        return snap

    async def add(
        self, spec: ForwardSpec, *, start: bool = True, forward_id: str | None = None
    ) -> str:
        snap = await self.client.call(ops.ADD, spec=spec, start=start, id=forward_id)
        return self._learn(snap).id

    async def start(self, forward_id: str) -> ForwardSnapshot:
        return self._learn(await self.client.call(ops.START, id=forward_id))

    async def stop(self, forward_id: str) -> None:
        self._learn(await self.client.call(ops.STOP, id=forward_id))

    async def restart(self, forward_id: str) -> ForwardSnapshot:
        return self._learn(await self.client.call(ops.RESTART, id=forward_id))

    async def update(self, forward_id: str, spec: ForwardSpec) -> None:
        self._learn(await self.client.call(ops.UPDATE, id=forward_id, spec=spec))

    async def set_reconnect(self, forward_id: str, enabled: bool) -> None:
        self._learn(await self.client.call(ops.SET_RECONNECT, id=forward_id, enabled=enabled))

    async def set_http_log(self, forward_id: str, enabled: bool) -> None:
        self._learn(await self.client.call(ops.SET_HTTP_LOG, id=forward_id, enabled=enabled))

    async def pod_log(
        self, forward_id: str, container: str | None = None, after: int = 0, wait: float = 0
    ) -> PodLogPage:
        return await self.client.call(
            ops.POD_LOG, id=forward_id, container=container, after=after, wait=int(wait)
        )

    async def remove(self, forward_id: str) -> None:
        await self.client.call(ops.REMOVE, id=forward_id)

    async def stop_all(self) -> None:
        """Stop every forward in the daemon (the dashboard's explicit "stop all")."""
        await asyncio.gather(*(self.stop(fid) for fid in list(self._mirror.forwards)))

    async def shutdown(self) -> None:
        """Let go of the daemon: its forwards keep running."""
        await self.client.close()
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        if self._resync is not None:
            self._resync.cancel()
            await asyncio.gather(self._resync, return_exceptions=True)
        self._bus.close()
