"""What a forward's traffic looked like lately: rates, their history, failures by reason, and
how long streams took to open and to deliver their first byte.

The byte path only adds to plain integers (`Connection.add_in`/`add_out`); everything here
reads those totals. One sampler per engine (:class:`RateSampler`) wakes once a second while
bytes move, turns each forward's and each open connection's totals into one per-second
sample, and stops at the first second in which nothing moved anywhere: an idle engine stays
idle. Readers pad the seconds the sampler slept through with zeros (`RateRing.padded`), so a
rate read long after the traffic stopped is 0, not the last busy second.

Latencies are kept as the last :data:`LATENCY_WINDOW` observations (a bounded window, not
all time); their p50/p99 are computed when read, and only again once a new one arrived.
"""

from __future__ import annotations

import asyncio
import itertools
import math
import operator
import time
from array import array
from collections.abc import Callable, Iterable
from typing import Any, Protocol

HISTORY_SECONDS = 300  # the ring of one forward: five minutes of 1 s samples
CONNECTION_SECONDS = 60  # one connection keeps a minute (its 1-minute average)
AVERAGE_SECONDS = 60
LATENCY_WINDOW = 512
SAMPLE_PERIOD = 1.0

# Why a connection failed: a small fixed set, so a dashboard, `portfwd stats` and the metrics
# endpoint can show each one (a label value per reason, never the kubelet's free text).
NO_POD = "no_pod"  # no Ready pod within the wait (the forward was reconnecting)
REFUSED = "refused"  # the pod's side refused or reset (the kubelet's words: nothing listens)
TUNNEL = "tunnel"  # no stream to the pod: the API server or the tunnel failed
DENIED = "denied"  # 401/403 on the port-forward
LOST = "lost"  # the tunnel's session was lost while the connection was open
LOCAL = "local"  # this machine: out of file descriptors, too many waiting connections
IO = "io"  # a socket error or timeout while moving bytes
INTERNAL = "internal"  # a bug (logged with its traceback)
FAILURE_REASONS = (NO_POD, REFUSED, TUNNEL, DENIED, LOST, LOCAL, IO, INTERNAL)


class IntRing:
    """The last `capacity` integers, in one array allocated once (see LatencyWindow)."""

    __slots__ = ("_next", "_values", "held")

    def __init__(self, capacity: int) -> None:
        self._values = array("q", bytes(8 * capacity))
        self._next = 0
        self.held = 0

    def __len__(self) -> int:
        return self.held

    @property
    def capacity(self) -> int:
        return len(self._values)

    def append(self, value: int) -> None:
        self._values[self._next] = value
        self._next = (self._next + 1) % len(self._values)
        self.held = min(self.held + 1, len(self._values))

    def tail(self, count: int) -> list[int]:
        """The newest `count` values (fewer while it holds fewer), oldest first."""
        count = min(count, self.held)
        start = self._next - count
        if start >= 0:
            return self._values[start : self._next].tolist()
        return self._values[start:].tolist() + self._values[: self._next].tolist()


class RateRing:
    """Bytes per second each way, one sample per second of the sampler's clock, oldest first.

    `second` is the sampler's second the newest sample ends at; `last_in`/`last_out` the
    totals it was taken from. A second the sampler did not wake for counts as 0 (nothing
    moved, or it would have been awake).
    """

    __slots__ = ("ins", "last_in", "last_out", "moved_at", "outs", "second")

    def __init__(self, capacity: int, second: int, bytes_in: int = 0, bytes_out: int = 0) -> None:
        self.ins = IntRing(capacity)
        self.outs = IntRing(capacity)
        self.moved_at: int | None = None  # the newest second in which bytes moved
        self.second = second
        self.last_in = bytes_in
        self.last_out = bytes_out

    def sample(self, second: int, bytes_in: int, bytes_out: int) -> bool:
        """The totals as of `second`; True when bytes moved since the last sample."""
        if second <= self.second:
            return False
        for _ in range(min(second - self.second - 1, self.ins.capacity)):
            self.ins.append(0)
            self.outs.append(0)
        d_in = max(0, bytes_in - self.last_in)
        d_out = max(0, bytes_out - self.last_out)
        self.ins.append(d_in)
        self.outs.append(d_out)
        self.second, self.last_in, self.last_out = second, bytes_in, bytes_out
        if d_in or d_out:
            self.moved_at = second
            return True
        return False

    def padded(self, second: int, count: int) -> tuple[list[int], list[int]]:
        """The last `count` samples as of `second` (seconds slept through are 0), oldest
        first; shorter while the ring holds fewer."""
        gap = max(0, second - self.second)
        take = max(0, min(len(self.ins), count - gap))
        ins = self.ins.tail(take) + [0] * min(gap, count)
        outs = self.outs.tail(take) + [0] * min(gap, count)
        return ins, outs

    def rates(self, second: int) -> tuple[float, float, float, float]:
        """(in, out) in the last second, and (in, out) moved in the last minute / 60, bytes
        per second, as of `second`."""
        if self.moved_at is None or second - self.moved_at >= AVERAGE_SECONDS:
            return 0.0, 0.0, 0.0, 0.0  # nothing moved in the minute: no lists to sum
        ins, outs = self.padded(second, AVERAGE_SECONDS)
        if not ins:
            return 0.0, 0.0, 0.0, 0.0
        minute = AVERAGE_SECONDS
        return float(ins[-1]), float(outs[-1]), sum(ins) / minute, sum(outs) / minute


class LatencyWindow:
    """The last LATENCY_WINDOW observations (seconds) and their p50/p99, computed on read.

    The window is an array of doubles allocated once, not a deque of float objects: values
    added during a burst would outlive it scattered among its short-lived objects, and keep
    the allocator from giving whole arenas back (see engine/logring.py)."""

    __slots__ = ("_cached", "_next", "_values", "count", "total")

    def __init__(self) -> None:
        self._values = array("d", bytes(8 * LATENCY_WINDOW))
        self._next = 0
        self._cached: tuple[float | None, float | None] | None = (None, None)
        self.count = 0  # all time, as `total` (seconds)
        self.total = 0.0

    def add(self, seconds: float) -> None:
        self._values[self._next] = seconds
        self._next = (self._next + 1) % LATENCY_WINDOW
        self._cached = None
        self.count += 1
        self.total += seconds

    def quantiles(self) -> tuple[float | None, float | None]:
        """(p50, p99) by the nearest rank; (None, None) before the first observation."""
        if self._cached is None:
            held = min(self.count, LATENCY_WINDOW)
            ordered = sorted(self._values[:held])
            self._cached = (_rank(ordered, 0.50), _rank(ordered, 0.99))
        return self._cached


def _rank(ordered: list[float], q: float) -> float | None:
    if not ordered:
        return None
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def current_second() -> int:
    """The samplers' clock: whole seconds of the monotonic clock (the event loop's)."""
    return int(time.monotonic() // SAMPLE_PERIOD)


class Metered(Protocol):
    """One open connection as the sampler reads it (`engine.connections.Connection`)."""

    bytes_in: int
    bytes_out: int
    rates: RateRing | None


class Traffic:
    """One forward's figures beyond its byte totals (kept across reconnects and restarts)."""

    def __init__(self) -> None:
        self.ring = RateRing(HISTORY_SECONDS, 0)
        self.busy = False  # the newest sample saw bytes move
        self.failures = dict.fromkeys(FAILURE_REASONS, 0)
        self.stream_open = LatencyWindow()
        self.first_byte = LatencyWindow()

    def failed(self, reason: str) -> None:
        self.failures[reason] = self.failures.get(reason, 0) + 1

    def failure_counts(self) -> tuple[tuple[str, int], ...]:
        """The reasons that happened, in FAILURE_REASONS order."""
        return tuple((k, n) for k, n in self.failures.items() if n)

    def sample(
        self, second: int, bytes_in: int, bytes_out: int, connections: Iterable[Metered]
    ) -> tuple[bool, bool]:
        """This second's sample of the forward and of each open connection -> (bytes moved,
        a rate changed: bytes moved now or in the sample before)."""
        moved = self.ring.sample(second, bytes_in, bytes_out)
        for conn in connections:
            ring = conn.rates
            if ring is None:  # opened during this second: its bytes so far are this second's
                ring = conn.rates = RateRing(CONNECTION_SECONDS, second - 1)
            ring.sample(second, conn.bytes_in, conn.bytes_out)
        was, self.busy = self.busy, moved
        return moved, moved or was

    def history(self, second: int) -> tuple[tuple[int, ...], tuple[int, ...]]:
        """Bytes per second (in, out) over the last HISTORY_SECONDS as of `second`, oldest
        first, the leading idle seconds left out (both directions equally long). A forward
        idle all that time costs no scan (`portfwd ls` reads 200 of them at once)."""
        moved = self.ring.moved_at
        if moved is None or second - moved >= HISTORY_SECONDS:
            return (), ()
        ins, outs = self.ring.padded(second, HISTORY_SECONDS)
        start = min(_leading_zeros(ins), _leading_zeros(outs))
        return tuple(ins[start:]), tuple(outs[start:])


def _leading_zeros(values: list[int]) -> int:
    """How many of `values` are 0 before the first that is not (a scan in C)."""
    return len(values) - len(list(itertools.dropwhile(operator.not_, values)))


def traffic_stats(traffic: Traffic, second: int) -> dict[str, Any]:
    """The ForwardStats fields `traffic` fills, as of the sampler's `second`."""
    rate_in, rate_out, avg_in, avg_out = traffic.ring.rates(second)
    open_p50, open_p99 = traffic.stream_open.quantiles()
    first_p50, first_p99 = traffic.first_byte.quantiles()
    history_in, history_out = traffic.history(second)
    return {
        "rate_in": rate_in,
        "rate_out": rate_out,
        "avg_in": avg_in,
        "avg_out": avg_out,
        "failures": traffic.failure_counts(),
        "open_p50": open_p50,
        "open_p99": open_p99,
        "first_byte_p50": first_p50,
        "first_byte_p99": first_p99,
        "history_in": history_in,
        "history_out": history_out,
        "sampled_at": time.time() if history_in else None,
        "open_count": traffic.stream_open.count,
        "open_sum": traffic.stream_open.total,
        "first_byte_count": traffic.first_byte.count,
        "first_byte_sum": traffic.first_byte.total,
    }


class Sampled(Protocol):
    """What the sampler reads of one forward (`Forward.sample_rates`)."""

    def sample_rates(self, second: int) -> bool:
        """Take this second's sample; True when bytes moved."""
        ...


class RateSampler:
    """The engine's one rate ticker: runs while bytes move (started by `poke`), a sample a
    second of every forward, and ends at the first second in which nothing moved."""

    def __init__(self, forwards: Callable[[], Iterable[Sampled]]) -> None:
        self._forwards = forwards
        self._task: asyncio.Task[None] | None = None
        self._closed = False
        self.wakeups = 0  # samples taken (tests: an idle engine takes none)

    @property
    def running(self) -> bool:
        return self._task is not None

    def poke(self) -> None:
        """Bytes moved: make sure the ticker runs."""
        if self._task is None and not self._closed:
            self._task = asyncio.create_task(self._run(), name="rate-sampler")

    async def _run(self) -> None:
        try:
            while True:
                # Wake just after the next whole second, so each sample covers one second.
                now = time.monotonic()
                await asyncio.sleep((math.floor(now) + 1) - now + 1e-3)
                self.wakeups += 1
                second = current_second()
                moved = False
                for fwd in list(self._forwards()):
                    moved = fwd.sample_rates(second) or moved
                if not moved:
                    return  # idle: the next byte pokes a new ticker
        finally:
            if self._task is asyncio.current_task():
                self._task = None

    async def close(self) -> None:
        self._closed = True
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.wait({task})
