"""Giving freed memory back to the system after a burst of traffic.

A burst (hundreds of connections moving megabytes each at once) leaves glibc's heap with many
freed blocks, which malloc keeps: the process would stay near its peak RSS for good (seen
before this existed: 714 MB after 500 concurrent 1 MB echoes, and 90 MB after a manual
`malloc_trim(0)`). So once no connection is open anymore after at least :data:`TRIM_AFTER`
bytes moved, or once no byte has moved for a few seconds though connections stay open
(measured: 8 forwards, 100 clients of 1-10 MB echoes: 44 MB at the start, 280 MB after,
held while v4 tunnels lingered and for good after, 51 MB after a trim), :class:`MemoryKeeper`
calls `malloc_trim(0)` in a worker thread (it can take a
few milliseconds on a large heap, and needs no lock of ours). Where there is no glibc
(musl, macOS, Windows) it does nothing: those allocators return memory by themselves or
offer no call for it.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import ctypes.util
import gc
import logging
import os
import time
from collections.abc import Callable

log = logging.getLogger(__name__)

TRIM_AFTER = 32 * 1024 * 1024  # bytes moved since the last trim before the next one
TRIM_DELAY = 1.0  # seconds after the last connection closed
QUIET_DELAY = 5.0  # seconds without a byte moved, while connections stay open
# Then again this long after (each after the one before: 5 s ... 2 min): idle tunnel
# sessions close 10 s after their last stream (tunnel/pool.py), a v4 connection lingers 30 s
# after its client finished, and what they held is free only then (measured: 167-199 MiB
# left 40 s after a load with one trim at its end, 52 MiB after one more). A trim takes
# milliseconds in a worker thread.
FOLLOW_UPS = (5.0, 10.0, 15.0, 30.0, 60.0)
# Under traffic that never pauses, a collection and trim at most this often (once TRIM_AFTER
# bytes moved): on Python 3.11 every closed socket transport is a reference cycle (its
# `_read_ready_cb` is a bound method of itself), and a closed v4 WebSocket drags its TLS
# object and 128 KiB buffer into it. Such cycles reach the oldest generation, which the
# collector seldom visits: measured, a steady stream of v4 connections grew the daemon by
# 80 MiB every 15 s (48 -> 925 MiB in a 2-minute soak) though only 140 were open at a time.
SUSTAINED_EVERY = 15.0


def find_malloc_trim() -> Callable[[int], int] | None:
    """glibc's malloc_trim, or None where the C library has none."""
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        libc = ctypes.CDLL(name)
        trim = libc.malloc_trim
    except (OSError, AttributeError):
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return trim


def _rss_mib() -> float:
    """This process's resident memory (Linux; 0 elsewhere), for the log line."""
    try:
        with open("/proc/self/statm", "rb") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / (1 << 20)
    except (OSError, ValueError, IndexError):
        return 0.0


class MemoryKeeper:
    """Trims the heap when traffic stopped after a burst. `note` is cheap: call it often
    (it is called when counters change; with nothing changing it is not, so the trim waits
    for quiet on its own timer)."""

    def __init__(
        self,
        trim: Callable[[int], int] | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._trim = trim if trim is not None else find_malloc_trim()
        self._clock = clock
        self._moved = 0
        self._last_total = 0
        self._last_active = clock()
        self._last_trim = clock()
        self._open = 0
        self._trimmed_open = False  # the last trim ran while connections were open
        self._task: asyncio.Task[None] | None = None
        # Ends a follow-up's nap: the last connection closed after a trim that ran while
        # some were open, or a new burst came (its end is then waited for and trimmed).
        self._wake = asyncio.Event()
        self.trims = 0

    @property
    def pending(self) -> bool:
        """A trim is scheduled (traffic stopped after a burst) and has not run yet."""
        return self._task is not None

    def note(self, total_bytes: int, open_connections: int) -> None:
        """The bytes every forward moved so far, and the connections open now."""
        if total_bytes > self._last_total:
            self._moved += total_bytes - self._last_total
            self._last_active = self._clock()
        self._last_total = total_bytes
        self._open = open_connections
        if self._task is not None and self._nap_over():
            self._wake.set()  # a follow-up waiting its turn does not wait for its hour
        if self._trim is None or self._task is not None:
            return
        # Again once the last connection closed after a trim that ran while some were open:
        # what they held (a v4 tunnel lingers 30 s with its buffers) is free only now.
        if self._moved >= TRIM_AFTER or (open_connections == 0 and self._trimmed_open):
            self._task = asyncio.create_task(self._run(self._trim), name="malloc-trim")

    def _due(self) -> float:
        """Seconds until the burst counts as over: TRIM_DELAY after the last byte once no
        connection is open; QUIET_DELAY after it while some stay open (an idle keep-alive
        or a v4 tunnel lingering must not keep the peak's memory for good); and at the
        latest SUSTAINED_EVERY after the last trim, for traffic that never pauses."""
        wait = TRIM_DELAY if self._open == 0 else QUIET_DELAY
        now = self._clock()
        return min(self._last_active + wait - now, self._last_trim + SUSTAINED_EVERY - now)

    async def _run(self, trim: Callable[[int], int]) -> None:
        try:
            while True:
                while True:  # the burst is over when no byte moved for a while (a timer:
                    wait = self._due()  # `note` is not called while nothing changes)
                    if wait <= 0:
                        break
                    await asyncio.sleep(wait)
                await self._trim_now(trim)
                for later in FOLLOW_UPS:  # what the tunnels free when they retire, later
                    await self._nap(later)
                    if self._moved >= TRIM_AFTER:
                        break  # a new burst: wait for it to end, then start over
                    await self._trim_now(trim)
                else:
                    return
        except OSError as exc:  # pragma: no cover - the call itself does not fail
            log.debug("malloc_trim failed: %s", exc)
        finally:
            self._task = None

    def _nap_over(self) -> bool:
        return (self._open == 0 and self._trimmed_open) or self._moved >= TRIM_AFTER

    async def _nap(self, seconds: float) -> None:
        """Until the next follow-up, or until what it waits for happened earlier:
        - the last connection closed after a trim that ran while some were open (then
          TRIM_DELAY later): what the last ones held, a v4 tunnel lingering with its
          buffers, is free only then, and the follow-up due after it may be a minute away
          (seen in a soak's daemon log: 135 -> 61 MiB as the last lingering v4 tunnel closed);
        - a new burst: its end is waited for and trimmed as any burst's (seen in the tunnel
          bench: 200 half-closed 1 MB echoes during a follow-up's nap, 143 MiB 20 s after)."""
        if self._nap_over():
            self._wake.set()  # it happened while that trim ran
        else:
            self._wake.clear()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self._wake.wait()
                await asyncio.sleep(TRIM_DELAY)

    async def _trim_now(self, trim: Callable[[int], int]) -> None:
        self._moved = 0
        self._last_trim = self._clock()
        self._trimmed_open = self._open > 0
        before = _rss_mib()
        # Buffers held by reference cycles (an exception's traceback keeps its frame's
        # chunks) are freed only by the cycle collector, which an idle process seldom runs:
        # measured, 200 MiB of the 250 left after a load came back only after a collection.
        started = time.perf_counter()
        gc.collect()
        log.debug("gc.collect after a burst: %.1f ms", (time.perf_counter() - started) * 1000)
        await asyncio.to_thread(trim, 0)
        self.trims += 1
        after = _rss_mib()
        if before - after >= 1:
            log.info("after a burst of traffic: RSS %.0f -> %.0f MiB", before, after)

    async def close(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
