"""The engine as the TUI sees it: the Manager's public API, as a structural type.

The TUI is typed against this Protocol, not the concrete class, so pure rendering tests can
drive it with a small in-memory fake while every other test uses the real Manager.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Protocol

from portfwd.engine.events import Event
from portfwd.engine.model import ForwardSnapshot, ForwardSpec, LogEntry


class EventStream(Protocol):
    def __aiter__(self) -> AsyncIterator[Event]: ...

    def close(self) -> None: ...


class ConnectionView(Protocol):
    """One open connection of a forward, as the detail pane shows it."""

    @property
    def peer(self) -> str: ...  # the local client, e.g. 127.0.0.1:53122

    @property
    def pod(self) -> str: ...

    @property
    def opened_at(self) -> float: ...  # wall clock

    @property
    def bytes_in(self) -> int: ...  # pod -> client

    @property
    def bytes_out(self) -> int: ...  # client -> pod


class EngineAPI(Protocol):
    def subscribe(self, maxsize: int = 1000) -> EventStream: ...

    def snapshot(self) -> list[ForwardSnapshot]: ...

    def get(self, forward_id: str) -> ForwardSnapshot: ...

    def logs(self, forward_id: str | None) -> list[LogEntry]: ...

    def open_connections(self, forward_id: str) -> Sequence[ConnectionView]: ...

    async def add(
        self, spec: ForwardSpec, *, start: bool = True, forward_id: str | None = None
    ) -> str: ...

    async def start(self, forward_id: str) -> ForwardSnapshot: ...

    async def stop(self, forward_id: str) -> None: ...

    async def restart(self, forward_id: str) -> ForwardSnapshot: ...

    async def update(self, forward_id: str, spec: ForwardSpec) -> None: ...

    async def set_reconnect(self, forward_id: str, enabled: bool) -> None: ...

    async def remove(self, forward_id: str) -> None: ...

    async def shutdown(self) -> None: ...
