"""Freed memory goes back to the system once a burst of traffic is over."""

from __future__ import annotations

import asyncio

import pytest

from portfwd.engine import memory as memory_mod
from portfwd.engine.memory import TRIM_AFTER, MemoryKeeper, find_malloc_trim


async def test_a_trim_follows_a_burst_once_no_connection_is_open(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(memory_mod, "TRIM_DELAY", 0.0)
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
    assert not keeper.pending and calls == []
    keeper.note(TRIM_AFTER * 2, open_connections=0)  # over
    keeper.note(TRIM_AFTER * 2, open_connections=0)  # said again: one trim only
    await asyncio.wait_for(trimmed.wait(), 5)
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
