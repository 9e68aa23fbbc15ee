"""Fan-out of engine events to any number of subscribers, none of which can slow the engine.

Each subscriber has its own bounded queue. `publish` is synchronous and never waits: when a
subscriber's queue is full the event is dropped *for that subscriber only* and it is marked
lagging; as soon as there is room again it receives one :class:`Lagged` marker, which tells it
to re-read `Manager.snapshot()` (the snapshot is the truth; events are the news). A stats tick
that finds the queue more than half full is dropped the same way, keeping room for the events
that matter (state changes, log lines).
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator

from portfwd.engine.events import Event, Lagged, StatsTick


class Subscription:
    """One subscriber's bounded view of the event stream. Iterate it; `close()` to leave."""

    def __init__(self, bus: EventBus, maxsize: int) -> None:
        if maxsize < 2:
            raise ValueError("a subscription needs room for at least 2 events")
        self._bus = bus
        self.maxsize = maxsize
        self._queue: deque[Event] = deque()
        self._waiter: asyncio.Future[None] | None = None
        self._lagging = False
        self._closed = False
        self.dropped = 0  # events this subscriber never saw (for tests and diagnostics)

    def _offer(self, event: Event) -> None:
        if self._closed:
            return
        queue = self._queue
        limit = self.maxsize // 2 if isinstance(event, StatsTick) else self.maxsize
        needed = 2 if self._lagging else 1  # a pending Lagged goes in first
        if len(queue) + needed > limit:
            self.dropped += 1
            self._lagging = True
            return
        if self._lagging:
            queue.append(Lagged())
            self._lagging = False
        queue.append(event)
        self._wake()

    def _wake(self) -> None:
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def qsize(self) -> int:
        return len(self._queue)

    def get_nowait(self) -> Event | None:
        """The next event, or None when nothing is queued (a pending Lagged is delivered)."""
        if self._queue:
            return self._queue.popleft()
        if self._lagging:
            self._lagging = False
            return Lagged()
        return None

    async def get(self) -> Event:
        """The next event; raises StopAsyncIteration once closed and drained."""
        while True:
            event = self.get_nowait()
            if event is not None:
                return event
            if self._closed:
                raise StopAsyncIteration
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None

    def __aiter__(self) -> AsyncIterator[Event]:
        return self

    async def __anext__(self) -> Event:
        return await self.get()

    def close(self) -> None:
        """Leave the bus; an iterating consumer ends after what is already queued."""
        if not self._closed:
            self._closed = True
            self._bus._remove(self)
            self._wake()

    @property
    def closed(self) -> bool:
        return self._closed


class EventBus:
    def __init__(self) -> None:
        self._subscribers: list[Subscription] = []

    def subscribe(self, maxsize: int = 1000) -> Subscription:
        sub = Subscription(self, maxsize)
        self._subscribers.append(sub)
        return sub

    def _remove(self, sub: Subscription) -> None:
        if sub in self._subscribers:
            self._subscribers.remove(sub)

    def publish(self, event: Event) -> None:
        """Hand `event` to every subscriber; never blocks, never raises for a slow one."""
        for sub in tuple(self._subscribers):
            sub._offer(event)

    def close(self) -> None:
        for sub in tuple(self._subscribers):
            sub.close()

    @property
    def subscriber_count(self) -> int:
        return len(self._subscribers)
