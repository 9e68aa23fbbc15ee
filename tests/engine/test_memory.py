"""Freed memory goes back to the system once a burst of traffic is over."""

from __future__ import annotations

import asyncio
import gc
import weakref

import pytest

from portfwd.engine import memory as memory_mod
from portfwd.engine.memory import TRIM_AFTER, MemoryKeeper, find_malloc_trim


async def test_a_trim_follows_a_burst_once_no_connection_is_open(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(memory_mod, "TRIM_DELAY", 0.0)
    monkeypatch.setattr(memory_mod, "FOLLOW_UPS", ())
    calls: list[int] = []
    trimmed = asyncio.Event()
    loop = asyncio.get_running_loop()

    def trim(pad: int) -> int:  # runs in a worker thread
        calls.append(pad)
        loop.call_soon_threadsafe(trimmed.set)
        return 1

    keeper = MemoryKeeper(trim=trim)
    keeper.note(TRIM_AFTER // 2, open_connections=3)
    keeper.note(TRIM_AFTER * 2, open_connections=3)  # a burst, still going
    assert calls == []  # (a trim waits for the traffic to stop: QUIET_DELAY, 5 s)
    keeper.note(TRIM_AFTER * 2, open_connections=0)  # over
    keeper.note(TRIM_AFTER * 2, open_connections=0)  # said again: one trim only
    await asyncio.wait_for(trimmed.wait(), 5)
    async with asyncio.timeout(5):
        while keeper.pending:  # noqa: ASYNC110 (bounded; the trim task ends after its trim)
            await asyncio.sleep(0.01)
    assert calls == [0]
    keeper.note(TRIM_AFTER * 2 + 100, open_connections=0)  # a trickle is not a burst
    assert not keeper.pending and calls == [0]
    await keeper.close()


async def test_close_cancels_a_pending_trim(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    keeper = MemoryKeeper(trim=lambda pad: calls.append(pad) or 1)
    keeper.note(TRIM_AFTER, open_connections=0)
    assert keeper.pending
    await keeper.close()  # awaits the cancelled trim: nothing can run after this
    assert calls == [] and not keeper.pending


def test_glibc_has_malloc_trim_here() -> None:
    trim = find_malloc_trim()
    assert trim is not None and trim(0) in (0, 1)


async def _trimmed(keeper: MemoryKeeper, count: int) -> None:
    async with asyncio.timeout(10):
        while True:
            if keeper.trims >= count:
                return
            await asyncio.sleep(0.01)


async def test_a_trim_follows_a_burst_though_connections_stay_open(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Idle keep-alives or v4 tunnels lingering 30 s kept the daemon at its peak for good
    (issue 16: 449 MB peak, 333 MB 45 min later): quiet is enough."""
    monkeypatch.setattr(memory_mod, "QUIET_DELAY", 0.05)
    monkeypatch.setattr(memory_mod, "FOLLOW_UPS", ())
    keeper = MemoryKeeper(trim=lambda pad: 1)
    keeper.note(TRIM_AFTER * 2, open_connections=5)  # a burst; five connections stay open
    await _trimmed(keeper, 1)
    await keeper.close()


async def test_traffic_that_never_pauses_is_collected_and_trimmed_now_and_then(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A steady stream of v4 connections never lets the traffic pause: their closed
    transports (reference cycles on Python 3.11) piled up, 80 MiB every 15 s."""
    monkeypatch.setattr(memory_mod, "SUSTAINED_EVERY", 0.05)
    monkeypatch.setattr(memory_mod, "FOLLOW_UPS", (0.01,))
    now = [0.0]
    keeper = MemoryKeeper(trim=lambda pad: 1, clock=lambda: now[0])
    total = 0
    for _ in range(3):  # bytes keep moving: the quiet delay never passes
        total += TRIM_AFTER
        keeper.note(total, open_connections=40)
        now[0] += 0.1  # (the keeper's clock; its timer sleeps on the loop's)
        await _trimmed(keeper, keeper.trims + 1)
    await keeper.close()


async def test_trims_follow_up_after_the_burst_and_collect_cycles_first(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """What the tunnels free when they retire (seconds later), and buffers kept alive only by
    a reference cycle, go back too."""
    monkeypatch.setattr(memory_mod, "TRIM_DELAY", 0.0)
    monkeypatch.setattr(memory_mod, "FOLLOW_UPS", (0.01, 0.01))

    class Holder:
        def __init__(self) -> None:
            self.buffer = bytearray(1 << 20)
            self.me = self  # a cycle: only the collector frees it

    was_enabled = gc.isenabled()
    gc.disable()  # (as in an idle process: no allocations, no automatic collection)
    try:
        keeper = MemoryKeeper(trim=lambda pad: 1)
        held = weakref.ref(Holder())
        assert held() is not None
        keeper.note(TRIM_AFTER, open_connections=0)
        await _trimmed(keeper, 3)  # the first, then each follow-up
        assert held() is None
        await keeper.close()
    finally:
        if was_enabled:
            gc.enable()


async def test_the_last_connection_closing_trims_then_not_a_follow_up_later(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A trim ran while v4 tunnels lingered; when the last one closed, the next trim waited
    for the next follow-up (up to a minute): the daemon 60 s after a soak still held what
    they had freed."""
    monkeypatch.setattr(memory_mod, "QUIET_DELAY", 0.01)
    monkeypatch.setattr(memory_mod, "TRIM_DELAY", 0.0)
    monkeypatch.setattr(memory_mod, "FOLLOW_UPS", (3600.0,))
    keeper = MemoryKeeper(trim=lambda pad: 1)
    keeper.note(TRIM_AFTER * 2, open_connections=5)  # a burst; five connections linger
    await _trimmed(keeper, 1)
    keeper.note(TRIM_AFTER * 2, open_connections=0)  # the last of them closed
    await _trimmed(keeper, 2)  # now, not in an hour
    await keeper.close()


async def test_a_burst_during_a_follow_ups_nap_is_trimmed_when_it_ends(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The tunnel bench's spdy forwarder held 143 MiB 20 s after 200 half-closed 1 MB echoes:
    they came while the keeper napped until its next follow-up (up to a minute), and a new
    burst did not wake it."""
    monkeypatch.setattr(memory_mod, "TRIM_DELAY", 0.0)
    monkeypatch.setattr(memory_mod, "FOLLOW_UPS", (3600.0,))
    keeper = MemoryKeeper(trim=lambda pad: 1)
    keeper.note(TRIM_AFTER * 2, open_connections=0)  # a burst, over
    await _trimmed(keeper, 1)
    assert keeper.pending  # napping until the follow-up
    keeper.note(TRIM_AFTER * 4, open_connections=200)  # the next burst, under way
    keeper.note(TRIM_AFTER * 4, open_connections=0)  # and over
    await _trimmed(keeper, 2)  # now, not in an hour
    await keeper.close()
