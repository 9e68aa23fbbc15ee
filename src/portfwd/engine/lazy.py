"""Lazy forwards (start on first use, sleep when idle) and `idle_stop` (stop when idle).

With fifty forwards a user touches twice a day, fifty watches, fifty tunnel sessions and their
pings keep the API server and the kubelets busy, and short-lived credentials (an exec plugin's
token, an SSO login) are renewed for nothing. A *lazy* forward binds its local port at once and
then asks the cluster nothing: it is `◌ idle`. The first connection wakes it (that connection
waits for the tunnel, it is not refused), the forward resolves and checks its tunnel as at any
start and goes ACTIVE; after `idle_after` seconds with no connection open and no byte moved it
closes its watches, releases its tunnel (the shared session closes once no other forward uses
it) and is idle again, port still bound. `idle_stop` stops (unbinds) a forward, lazy or not,
after that long without traffic, with a log line saying why.

An open connection keeps a forward awake however quiet it is: closing its tunnel would cut it
(a database client's pooled connection must not break because nobody queried for ten
minutes). The quiet time counts from the last byte or the last connection's end.

:class:`Idler` holds the clocks and the signals; the forward's supervisor (forward.py) asks it
when to doze and wake. One timer task per forward sleeps until the next deadline (no polling):
it is re-planned only when the forward falls asleep or wakes, and re-armed when it fires
early because traffic moved the deadline. Bytes only move a number (`touch`).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from portfwd.engine.model import ForwardSnapshot, ForwardSpec, ForwardState

IDLE_STOP_MARK = "(idle_stop)"  # ends the reason of a forward idle_stop stopped


def watched(spec: ForwardSpec) -> bool:
    """Does this forward need an Idler (lazy, or stopped when idle)?"""
    return spec.lazy or spec.idle_stop > 0


def stopped_when_idle(snap: ForwardSnapshot) -> bool:
    """Stopped by its idle_stop: gone as the user asked, not lost (`forward` then exits 0)."""
    return snap.state is ForwardState.STOPPED and snap.reason.endswith(IDLE_STOP_MARK)


def idle_stop(message: str) -> bool:
    """Is this log line the one idle_stop leaves (`stopped: no traffic for 30m (idle_stop)`)?"""
    return message.endswith(IDLE_STOP_MARK)


def starts_asleep(spec: ForwardSpec) -> bool:
    """A lazy forward starts idle, unless its local port is the number a bare port name
    resolves to: that one must ask the cluster before it can bind, so it starts awake."""
    return spec.lazy and not spec.local_from_remote


class Idler:
    """When a forward's traffic stopped, and what follows: doze (lazy) or stop (idle_stop).

    `busy()` says how many connections are open now (they keep the forward awake); `poke()`
    wakes the forward's supervisor to look at `due`. The supervisor calls `fell_asleep()` and
    `sleep()` to doze, and the accept path calls `demand()` for each new connection.
    """

    def __init__(
        self,
        spec: ForwardSpec,
        busy: Callable[[], int],
        poke: Callable[[], None],
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.lazy = spec.lazy
        self.idle_after = spec.idle_after
        self.idle_stop = spec.idle_stop
        self._busy = busy
        self._poke = poke
        self._clock = clock
        self._last = clock()  # the last sign of traffic
        self.asleep = starts_asleep(spec)
        self.idle_due = False  # awake and quiet for idle_after: the supervisor should doze
        self.stop_due = False  # quiet for idle_stop: the supervisor should stop the forward
        self._signal = asyncio.Event()  # a connection arrived, or stop is due: a doze ends
        self._replan = asyncio.Event()  # asleep or awake changed: the timer re-plans
        self._task: asyncio.Task[None] | None = None

    @property
    def due(self) -> bool:
        return self.idle_due or self.stop_due

    @property
    def quiet(self) -> float:
        """Seconds since the last traffic."""
        return max(0.0, self._clock() - self._last)

    # -- traffic ------------------------------------------------------------------------------

    def touch(self) -> None:
        """Traffic: a byte moved, a connection opened or ended."""
        self._last = self._clock()

    def demand(self) -> bool:
        """A connection was accepted: wake a dozing forward. True for a lazy forward: the
        connection waits for its tunnel even when it has none yet."""
        self._last = self._clock()
        self._signal.set()  # also when not asleep yet: a doze that begins now ends at once
        return self.lazy

    # -- the supervisor's side ----------------------------------------------------------------

    def start(self) -> None:
        if self._task is None or self._task.done():
            self._last = self._clock()
            self._task = asyncio.create_task(self._watch(), name="idle-timer")

    async def close(self) -> None:
        task, self._task = self._task, None
        if task is not None and not task.done():
            task.cancel()
            await asyncio.wait({task})

    def fell_asleep(self) -> None:
        """The forward closed its tunnel: nothing to doze for until it wakes again."""
        self.asleep, self.idle_due = True, False
        self._replan.set()

    async def sleep(self) -> bool:
        """Doze until a connection arrives (True) or idle_stop is due (False)."""
        self.asleep = True
        self._replan.set()
        await self._signal.wait()
        self._signal.clear()
        if self.stop_due:
            return False
        self.asleep = False
        self._last = self._clock()
        self._replan.set()
        return True

    # -- the timer ----------------------------------------------------------------------------

    def _deadline(self) -> float | None:
        """The next moment something may be due (clock time), None if nothing can be."""
        times = []
        if self.idle_stop > 0:
            times.append(self._last + self.idle_stop)
        if self.lazy and not self.asleep and not self.idle_due:
            times.append(self._last + self.idle_after)
        return min(times) if times else None

    def check(self) -> None:
        """Decide what is due now (the timer calls it; tests too, with a fake clock)."""
        now = self._clock()
        if self._busy():
            self._last = now  # open connections keep it awake
        quiet = now - self._last
        if self.idle_stop > 0 and quiet >= self.idle_stop and not self.stop_due:
            self.stop_due = True
            self._signal.set()
            self._poke()
            return
        if self.lazy and not self.asleep and not self.idle_due and quiet >= self.idle_after:
            self.idle_due = True
            self._signal.clear()  # only connections from now on wake the coming doze
            self._poke()

    async def _watch(self) -> None:
        while not self.stop_due:
            self.check()
            deadline = self._deadline()
            self._replan.clear()
            if deadline is None:
                await self._replan.wait()
                continue
            try:
                async with asyncio.timeout(max(0.0, deadline - self._clock())):
                    await self._replan.wait()
            except TimeoutError:
                pass
