"""Moving bytes between one local connection and one tunnel stream, both ways.

Back-pressure is end to end: the upstream pump reads a chunk from the client and awaits the
tunnel's `send` before reading more; the downstream pump writes to the client and waits below
the client's high-water mark before receiving more. So the bytes portfwd holds per connection
are bounded by :data:`MAX_BUFFERED_PER_CONNECTION` plus what the tunnel's own bounded buffers
hold, whatever the speed of either side.

Ends of stream:

- The pod side ends: the client gets EOF (write_eof) and the socket is closed once the client
  closes too, or after :data:`REMOTE_EOF_LINGER` seconds.
- The client finishes sending (`shutdown(WR)`, or a close that looks the same until we write
  to it). On a stream with a half-close (SPDY) the pod is told (FIN) and the reply is
  delivered until the pod ends: nothing is guessed. `v4.channel.k8s.io` has no half-close,
  so the pod cannot be told; what it sends is still delivered, until it closes (the runtime
  closes about 1 s after the backend does), the client turns out to be gone (a write fails),
  or it has been silent for :data:`V4_EOF_IDLE_LIMIT` seconds of waiting for it (time
  blocked on a slow client does not count); then the client gets its EOF. The client's end
  is reported through `warn` when it happens (the forward says it once): a reply that waits
  for it never comes. Each such connection keeps its own WebSocket (a TLS session, about
  0.5 MiB, and two descriptors), so a forward keeps about :data:`V4_MAX_LINGERING` of them
  waiting (:class:`Lingering`): past that, a newer one ends the wait of the one quiet
  longest, if that one has heard nothing from its pod for :data:`V4_EVICT_QUIET` seconds (a
  reply still flowing is never cut for room); while the forward is out of descriptors none
  waits at all. Without this a burst of short v4 requests held a gigabyte for half a minute.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Protocol

from portfwd.tunnel.listener import (
    READ_CHUNK_MAX,
    READ_HIGH_WATER,
    WRITE_HIGH_WATER,
    WRITE_SLICE,
    LocalConnection,
)
from portfwd.tunnel.protocol import TunnelError, TunnelStream

# After the client's end on v4, how long the pod may be quiet before the client gets its EOF:
# a starved machine pauses a transfer for seconds, and no byte may be cut short by a guess.
V4_EOF_IDLE_LIMIT = 30.0
V4_NO_HALF_CLOSE = (
    "a client finished sending, and v4.channel.k8s.io cannot tell the pod: a reply that waits"
    " for the client's end never comes; such connections close once the pod has been quiet"
    " for {limit:g} s ({quiet:g} s when more than {most} wait; --protocol auto or spdy pass the"
    " end on)"
)
# How many v4 connections of one forward may wait for a silent pod after their client's end
# (more only while none of them has been silent for V4_EVICT_QUIET seconds). Under a steady
# stream of short connections about rate x V4_EVICT_QUIET of them wait at once, each with
# its own TLS session, and the small objects of such a peak scatter the heap for good.
# Measured in a 90 s soak (two v4 forwards of eight, ~10 connections a second each): 32 and
# 5 s held ~120 at once (292 descriptors, 231 MiB) and left the daemon 21 % above its start
# a minute later; 16 and 2 s held ~60 (150, 174 MiB) and left 16 %. A pod that speaks at
# least every 2 s is never cut (the runtime itself closes ~1 s after the backend does); one
# slower than that to answer, behind 16 others waiting, can be (seen on a loaded machine: the
# suite's 500 half-closed 1 MB echoes through the starved sandbox, which now wait patiently).
V4_MAX_LINGERING = 16
V4_EVICT_QUIET = 2.0
REMOTE_EOF_LINGER = 2.0
SEND_FAILURE_SETTLE = 2.0

# Upper bound of the bytes portfwd's own buffers hold for one connection (what
# `LocalConnection.buffered` reports): unread client input (reading pauses at READ_HIGH_WATER;
# one more chunk of at most READ_CHUNK_MAX may land) and the client's write buffer
# (WRITE_HIGH_WATER plus the slice that crossed it). Beyond this, one chunk is in each pump's
# hands (<= SEND_FRAME_MAX up, <= the WebSocket's max message size down) and aiohttp's
# WebSocket reader and writer hold their own bounded buffers (reading pauses at 2 x 64 KiB).
MAX_BUFFERED_PER_CONNECTION = READ_HIGH_WATER + READ_CHUNK_MAX + WRITE_HIGH_WATER + WRITE_SLICE


class Meter(Protocol):
    """Where a connection's byte counts go (the forward's stats)."""

    def add_in(self, n: int) -> None:
        """n bytes went pod -> client."""
        ...

    def add_out(self, n: int) -> None:
        """n bytes went client -> pod."""
        ...


class _Clock:
    """Since when the downstream pump waits for the pod (None while it writes to the
    client), and what ends a v4 wait early (:class:`Lingering`)."""

    __slots__ = ("eof_at", "released", "waiting_since")

    def __init__(self) -> None:
        self.waiting_since: float | None = None
        self.eof_at = 0.0
        self.released: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def release(self) -> None:
        if not self.released.done():
            self.released.set_result(None)

    def quiet_since(self) -> float | None:
        """Since when nothing came from the pod after the client's end (None: writing)."""
        since = self.waiting_since
        return None if since is None else max(since, self.eof_at)


class Lingering:
    """The v4 connections of one forward that wait for a silent pod after their client's
    end. Each holds a WebSocket, so their number must not grow with the request rate: past
    `limit`, a newcomer releases the one quiet longest, if it has been quiet for `quiet`
    seconds (one whose reply is still coming stays: the limit gives way instead). While
    the forward is out of descriptors (`pressure`) nobody waits: `shed` releases all, and a
    newcomer is released at once."""

    def __init__(self, limit: int = V4_MAX_LINGERING, quiet: float = V4_EVICT_QUIET) -> None:
        self.limit = limit
        self.quiet = quiet
        self.pressure = False
        self._waiting: dict[_Clock, None] = {}  # in order of arrival

    def __len__(self) -> int:
        return len(self._waiting)

    def enter(self, clock: _Clock) -> None:
        if self.pressure:
            clock.release()
            return
        if len(self._waiting) >= self.limit:
            now = asyncio.get_running_loop().time()
            quiet = [
                (since, id(c), c)
                for c in self._waiting
                if (since := c.quiet_since()) is not None and now - since >= self.quiet
            ]
            if quiet:
                oldest = min(quiet)[2]
                self.leave(oldest)
                oldest.release()
        self._waiting[clock] = None

    def leave(self, clock: _Clock) -> None:
        self._waiting.pop(clock, None)

    def shed(self) -> int:
        """Release every waiting connection; how many there were."""
        waiting, self._waiting = self._waiting, {}
        for clock in waiting:
            clock.release()
        return len(waiting)


class LocalGone(Exception):
    """The client went away while we were writing to it (not a failure of the forward)."""


async def _upstream(local: LocalConnection, stream: TunnelStream, meter: Meter) -> None:
    while True:
        data = await local.read()
        if not data:
            return
        await stream.send(data)
        meter.add_out(len(data))


async def _downstream(
    stream: TunnelStream, local: LocalConnection, meter: Meter, clock: _Clock
) -> None:
    loop = asyncio.get_running_loop()
    while True:
        clock.waiting_since = loop.time()
        data = await stream.receive()
        clock.waiting_since = None
        if not data:
            return
        try:
            await local.write(data)
        except ConnectionError as exc:
            raise LocalGone() from exc
        meter.add_in(len(data))


async def _cancel(*tasks: asyncio.Task[None]) -> None:
    """Cancel and reap tasks; our own cancellation still propagates."""
    pending = {task for task in tasks if not task.done()}
    for task in pending:
        task.cancel()
    if pending:
        await asyncio.wait(pending)
    for task in tasks:
        if not task.cancelled():
            task.exception()  # mark retrieved


async def pump(
    local: LocalConnection,
    stream: TunnelStream,
    meter: Meter,
    *,
    warn: Callable[[str], None] | None = None,
    eof_idle_limit: float = V4_EOF_IDLE_LIMIT,
    lingering: Lingering | None = None,
) -> None:
    """Run one connection to its end. Raises TunnelError when the pod side reported a failure.

    On cancellation (shutdown) both sides are aborted at once.
    """
    clock = _Clock()
    up = asyncio.create_task(_upstream(local, stream, meter))
    down = asyncio.create_task(_downstream(stream, local, meter, clock))
    finished = False
    try:
        await asyncio.wait({up, down}, return_when=asyncio.FIRST_COMPLETED)
        if not down.done():
            up_exc = up.exception()
            if up_exc is not None:
                # A send failed: usually the pod side is closing. Its own verdict (error text
                # or a normal end) is what the user should see, not "cannot write to closing
                # transport".
                done, _ = await asyncio.wait({down}, timeout=SEND_FAILURE_SETTLE)
                if down not in done:
                    raise up_exc
            elif stream.half_close:
                await stream.send_eof()  # the pod learns the client is done; its reply flows
                await asyncio.wait({down})
            else:
                if warn is not None:
                    pool = lingering or Lingering()
                    warn(
                        V4_NO_HALF_CLOSE.format(
                            limit=eof_idle_limit, quiet=pool.quiet, most=pool.limit
                        )
                    )
                if not await _v4_linger(down, clock, eof_idle_limit, lingering):
                    await _cancel(down)
                    await stream.close()
                    local.close()
                    finished = True
                    return
        await _cancel(up)
        exc = down.exception()
        if isinstance(exc, TunnelError):
            local.close()
            stream.abort()
            finished = True
            raise exc
        if isinstance(exc, LocalGone):
            await stream.close()
            finished = True
            return
        if exc is not None:
            raise exc
        # The pod side ended: EOF to the client, then close once it closes too.
        local.write_eof()
        await local.wait_eof(REMOTE_EOF_LINGER)
        local.close()
        await stream.close()
        finished = True
    finally:
        if not finished:
            await _cancel(up, down)
            stream.abort()
            local.abort()


async def _v4_linger(
    down: asyncio.Task[None], clock: _Clock, limit: float, lingering: Lingering | None
) -> bool:
    """After the client's EOF on v4: True once the pod side ended, False when it stayed
    silent for `limit` seconds of waiting for it or `lingering` released it."""
    loop = asyncio.get_running_loop()
    clock.eof_at = loop.time()
    if lingering is not None:
        lingering.enter(clock)
    released = clock.released
    try:
        while not down.done():
            since = clock.quiet_since()
            quiet_for = 0.0 if since is None else loop.time() - since
            if quiet_for >= limit or released.done():
                return False
            await asyncio.wait(
                {down, released}, timeout=limit - quiet_for, return_when=asyncio.FIRST_COMPLETED
            )
        return True
    finally:
        if lingering is not None:
            lingering.leave(clock)
