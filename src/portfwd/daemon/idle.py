"""Room for the owner's next command when every connection slot is taken.

The daemon serves at most `MAX_CLIENTS` connections. Without a policy, 64 connections that
sit idle (a script that connects and forgets, a client stopped with ^Z, raw sockets that
never say hello) lock the owner's own `portfwd ls` and `add` out. So when a connection
arrives and the daemon is full, the connection idle the longest is closed to make room
(with an error line saying why), if one is: no request in flight, not subscribed to events
(a dashboard is never closed for being quiet), idle for at least `grace` seconds. Only when
every connection is busy or watching is the newcomer refused.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Generic, TypeVar

T = TypeVar("T")

IDLE_GRACE = 0.5  # seconds: a connection that just arrived (or just asked) is not closed


class IdlePolicy(Generic[T]):
    """Which connection to close when the daemon is full; the server tells it when each
    connection arrives, starts and ends a request, and leaves."""

    def __init__(
        self,
        *,
        grace: float = IDLE_GRACE,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._grace = grace
        self._clock = clock
        self._last: dict[T, float] = {}  # connection -> when it last did anything
        self._busy: dict[T, int] = {}  # connection -> requests in flight

    def seen(self, conn: T) -> None:
        """It arrived, or said something."""
        self._last[conn] = self._clock()

    def began(self, conn: T) -> None:
        self._busy[conn] = self._busy.get(conn, 0) + 1
        self._last[conn] = self._clock()

    def ended(self, conn: T) -> None:
        left = self._busy.get(conn, 0) - 1
        if left > 0:
            self._busy[conn] = left
        else:
            self._busy.pop(conn, None)
        if conn in self._last:
            self._last[conn] = self._clock()

    def left(self, conn: T) -> None:
        self._last.pop(conn, None)
        self._busy.pop(conn, None)

    def victim(self, conns: Iterable[T], *, watching: Callable[[T], bool]) -> T | None:
        """The connection to close for a newcomer, or None (refuse the newcomer)."""
        now = self._clock()
        best: T | None = None
        best_since = now - self._grace
        for conn in conns:
            since = self._last.get(conn)
            if since is None or self._busy.get(conn) or watching(conn):
                continue
            if since <= best_since:
                best, best_since = conn, since
        return best
