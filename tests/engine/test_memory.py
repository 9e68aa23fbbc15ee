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
    await asyncio.sleep(0.05)
    assert calls == []
    keeper.note(TRIM_AFTER * 2, open_connections=0)  # over
    keeper.note(TRIM_AFTER * 2, open_connections=0)  # said again: one trim only
    await asyncio.wait_for(trimmed.wait(), 5)
    assert calls == [0]
    keeper.note(TRIM_AFTER * 2 + 100, open_connections=0)  # a trickle is not a burst
    await asyncio.sleep(0.05)
    assert calls == [0]
    await keeper.close()


async def test_close_cancels_a_pending_trim(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    keeper = MemoryKeeper(trim=lambda pad: calls.append(pad) or 1)
    keeper.note(TRIM_AFTER, open_connections=0)
    await keeper.close()
    await asyncio.sleep(0.05)
    assert calls == []


def test_glibc_has_malloc_trim_here() -> None:
    trim = find_malloc_trim()
    assert trim is not None and trim(0) in (0, 1)


async def test_connections_freed_in_reference_cycles_are_collected_before_the_trim(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A closed v4 WebSocket, its response and its TLS transport reference each other: until
    a full collection frees them, trimming gives nothing back (200 v4 connections: 180 MiB)."""
    monkeypatch.setattr(memory_mod, "TRIM_DELAY", 0.0)

    class Connection:
        def __init__(self) -> None:
            self.buffer = bytearray(128 * 1024)
            self.me = self  # a cycle

    gc.disable()  # no automatic collection may do it for the keeper
    try:
        conn = Connection()
        gone = weakref.ref(conn)
        del conn
        alive_at_trim: list[bool] = []
        loop = asyncio.get_running_loop()
        trimmed = asyncio.Event()

        def trim(pad: int) -> int:
            alive_at_trim.append(gone() is not None)
            loop.call_soon_threadsafe(trimmed.set)
            return 1

        keeper = MemoryKeeper(trim=trim)
        keeper.note(TRIM_AFTER * 2, open_connections=0)
        await asyncio.wait_for(trimmed.wait(), 5)
        assert alive_at_trim == [False]
        await keeper.close()
    finally:
        gc.enable()
