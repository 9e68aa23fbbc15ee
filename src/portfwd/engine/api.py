"""The engine, as every front end sees it: one Protocol.

The dashboard, `portfwd forward`, the session service and the daemon's clients all talk to
an engine through :class:`EngineAPI`, never to its insides: the in-process `Manager` is one
implementation, `portfwd.daemon.client.RemoteEngine` (the same methods over the daemon's
socket) another, and tests use small fakes. Values crossing it are the immutable ones of
`engine/model.py` and `engine/events.py`, and `engine/serial.py` turns each of them into
plain data and back.

What a front end learns, it learns from events (a bounded `EventStream` of its own; a
`Lagged` marker means "re-read `snapshot()`") and from the typed log kinds (`LogKind`):
none of them reads log text to decide anything.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Protocol

from portfwd.engine.events import Event
from portfwd.engine.model import ConnectionInfo, ForwardSnapshot, ForwardSpec, LogEntry
from portfwd.engine.podlogs import PodLogPage


class EventStream(Protocol):
    """One subscriber's events, in order, until `close()` (or the engine shuts down)."""

    def __aiter__(self) -> AsyncIterator[Event]: ...

    def close(self) -> None: ...


class EngineAPI(Protocol):
    def subscribe(self, maxsize: int = 1000) -> EventStream: ...

    def snapshot(self) -> list[ForwardSnapshot]: ...

    def get(self, forward_id: str) -> ForwardSnapshot:
        """KeyError for an unknown id."""
        ...

    def logs(self, forward_id: str | None) -> list[LogEntry]:
        """The forward's recent log (None: the app-wide one), oldest first."""
        ...

    def open_connections(self, forward_id: str) -> list[ConnectionInfo]: ...

    async def add(
        self, spec: ForwardSpec, *, start: bool = True, forward_id: str | None = None
    ) -> str:
        """Add a forward (and start it); its id. InputError for a spec it cannot take (e.g.
        a name another forward has); ValueError for an id already used."""
        ...

    async def start(self, forward_id: str) -> ForwardSnapshot:
        """Start (or join a start in progress); returns once ACTIVE, RECONNECTING, ERROR or
        stopped."""
        ...

    async def stop(self, forward_id: str) -> None: ...

    async def restart(self, forward_id: str) -> ForwardSnapshot: ...

    async def update(self, forward_id: str, spec: ForwardSpec) -> None: ...

    async def set_reconnect(self, forward_id: str, enabled: bool) -> None: ...

    async def set_http_log(self, forward_id: str, enabled: bool) -> None:
        """The HTTP request log on or off for the connections opened from now on."""
        ...

    async def pod_log(
        self, forward_id: str, container: str | None = None, after: int = 0, wait: float = 0
    ) -> PodLogPage:
        """The log of the pod the forward uses now: the lines after line `after` (0: the
        latest), waiting up to `wait` seconds for some (engine/podlogs.py). KeyError for an
        unknown id."""
        ...

    async def remove(self, forward_id: str) -> None: ...

    async def shutdown(self) -> None:
        """The front end is done with this engine: an in-process one stops every forward; a
        remote one only lets go of the connection (the daemon keeps its forwards)."""
        ...


class Snapshots(Protocol):
    """Anything that lists the forwards: an EngineAPI, or the daemon's blocking client."""

    def snapshot(self) -> list[ForwardSnapshot]: ...


def find(engine: Snapshots, key: str) -> ForwardSnapshot:
    """The forward whose id or name is `key` (an id wins over a name); KeyError when there
    is none."""
    return find_in(engine.snapshot(), key)


def find_in(snapshots: list[ForwardSnapshot], key: str) -> ForwardSnapshot:
    """`find` over snapshots already read."""
    for snap in snapshots:
        if snap.id == key:
            return snap
    for snap in snapshots:
        if snap.spec.name == key:
            return snap
    raise KeyError(key)
