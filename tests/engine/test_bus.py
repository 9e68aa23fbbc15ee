"""EventBus: fan-out, bounded queues, a slow subscriber never blocks the publisher."""

from __future__ import annotations

import asyncio

from portfwd.engine.bus import EventBus
from portfwd.engine.events import ForwardRemoved, Lagged, StatsTick
from portfwd.engine.model import ForwardStats


async def test_every_subscriber_gets_every_event() -> None:
    bus = EventBus()
    a, b = bus.subscribe(), bus.subscribe()
    for i in range(5):
        bus.publish(ForwardRemoved(str(i)))
    for sub in (a, b):
        got = [await sub.get() for _ in range(5)]
        assert got == [ForwardRemoved(str(i)) for i in range(5)]


async def test_slow_subscriber_gets_lagged_and_fast_one_everything() -> None:
    bus = EventBus()
    slow = bus.subscribe(maxsize=10)
    fast = bus.subscribe(maxsize=10_000)
    received: list[object] = []

    async def consume() -> None:
        async for event in fast:
            received.append(event)

    consumer = asyncio.create_task(consume())
    for i in range(1000):
        bus.publish(ForwardRemoved(str(i)))  # synchronous: returns even though `slow` is full
        if i % 50 == 0:
            await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert slow.qsize() == 10
    assert slow.dropped == 990
    # The slow one reads what it has, then learns it lagged, then sees new events again.
    first = [slow.get_nowait() for _ in range(10)]
    assert first == [ForwardRemoved(str(i)) for i in range(10)]
    bus.publish(ForwardRemoved("late"))
    assert slow.get_nowait() == Lagged()
    assert slow.get_nowait() == ForwardRemoved("late")
    assert slow.get_nowait() is None
    fast.close()
    await asyncio.wait_for(consumer, 5)
    assert received == [*(ForwardRemoved(str(i)) for i in range(1000)), ForwardRemoved("late")]


async def test_lagged_delivered_even_without_new_events() -> None:
    bus = EventBus()
    sub = bus.subscribe(maxsize=2)
    for i in range(3):
        bus.publish(ForwardRemoved(str(i)))
    assert [await sub.get() for _ in range(3)] == [
        ForwardRemoved("0"),
        ForwardRemoved("1"),
        Lagged(),
    ]


async def test_stats_ticks_leave_room_for_state_events() -> None:
    bus = EventBus()
    sub = bus.subscribe(maxsize=10)
    for _ in range(20):
        bus.publish(StatsTick("f", ForwardStats()))
    assert sub.qsize() == 5
    bus.publish(ForwardRemoved("f"))
    events = [sub.get_nowait() for _ in range(sub.qsize())]
    assert events[-2:] == [Lagged(), ForwardRemoved("f")]


async def test_closed_subscription_ends_iteration_and_leaves_bus() -> None:
    bus = EventBus()
    sub = bus.subscribe()
    waiter = asyncio.create_task(sub.get())
    await asyncio.sleep(0)
    sub.close()
    assert bus.subscriber_count == 0
    try:
        await asyncio.wait_for(waiter, 5)
        raise AssertionError("expected StopAsyncIteration")
    except StopAsyncIteration:
        pass
