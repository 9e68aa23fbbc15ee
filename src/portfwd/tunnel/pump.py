"""Moving bytes between one local connection and one tunnel stream, both ways.

Back-pressure is end to end: the upstream pump reads a chunk from the client and awaits the
tunnel's `send` before reading more; the downstream pump writes to the client and waits below
the client's high-water mark before receiving more. So the bytes portfwd holds per connection
are bounded by :data:`MAX_BUFFERED_PER_CONNECTION` plus what aiohttp's own bounded WebSocket
buffers hold, whatever the speed of either side.

Ends of stream: the v4 protocol has no half-close, and a client that calls `shutdown(WR)`
looks exactly like one that closed, until we write to it. So when the client finishes sending
(EOF) we keep delivering what the pod sends until the WebSocket ends, the client turns out to
be gone (a write fails), or the pod side has been quiet for a while; then the WebSocket is
closed. "Quiet" counts only time spent waiting for the pod, never time spent blocked on a slow
client, so a large response still streaming is delivered whole. How long: when the client's
last bytes are still unanswered (`request; shutdown(WR); read response`, as `nc -N` and many
HTTP/1.0 clients do) :data:`LOCAL_EOF_LINGER`; when the pod already answered after them, a
response still streaming keeps data flowing, so :data:`ANSWERED_EOF_LINGER` of quiet says it
is over. The short one matters: every closed client holds a WebSocket (a TLS connection)
until then, and clients that open many short connections would pile them up. When the pod
side ends, the client gets EOF (write_eof) and the socket is closed once the client closes
too, or after :data:`REMOTE_EOF_LINGER` seconds.
"""

from __future__ import annotations

import asyncio
from typing import Protocol

from portfwd.tunnel.listener import (
    READ_CHUNK_MAX,
    READ_HIGH_WATER,
    WRITE_HIGH_WATER,
    WRITE_SLICE,
    LocalConnection,
)
from portfwd.tunnel.protocol import TunnelError, TunnelStream

LOCAL_EOF_LINGER = 1.0
ANSWERED_EOF_LINGER = 0.1
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
    """When bytes last moved each way, and since when the downstream pump waits for the pod
    (None while it writes to the client)."""

    __slots__ = ("last_rx", "last_tx", "waiting_since")

    def __init__(self) -> None:
        self.last_rx = 0.0
        self.last_tx = 0.0
        self.waiting_since: float | None = None


class LocalGone(Exception):
    """The client went away while we were writing to it (not a failure of the forward)."""


async def _upstream(
    local: LocalConnection, stream: TunnelStream, meter: Meter, clock: _Clock
) -> None:
    loop = asyncio.get_running_loop()
    while True:
        data = await local.read()
        if not data:
            return
        clock.last_tx = loop.time()
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
        clock.last_rx = loop.time()
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


async def pump(local: LocalConnection, stream: TunnelStream, meter: Meter) -> None:
    """Run one connection to its end. Raises TunnelError when the pod side reported a failure.

    On cancellation (shutdown) both sides are aborted at once.
    """
    loop = asyncio.get_running_loop()
    clock = _Clock()
    up = asyncio.create_task(_upstream(local, stream, meter, clock))
    down = asyncio.create_task(_downstream(stream, local, meter, clock))
    finished = False
    try:
        await asyncio.wait({up, down}, return_when=asyncio.FIRST_COMPLETED)
        if down.done():
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
            finished = True
            return
        up_exc = up.exception()
        if up_exc is not None:
            # A send failed: usually the pod side is closing. Its own verdict (error text or a
            # normal end) is what the user should see, not "cannot write to closing transport".
            done, _ = await asyncio.wait({down}, timeout=SEND_FAILURE_SETTLE)
            if down in done:
                exc = down.exception()
                local.close()
                stream.abort()
                finished = True
                if exc is None or isinstance(exc, LocalGone):
                    return
                raise exc
            raise up_exc
        # The client finished sending: deliver what the pod sends until it goes quiet.
        eof_at = loop.time()
        linger = ANSWERED_EOF_LINGER if clock.last_rx > clock.last_tx else LOCAL_EOF_LINGER
        while not down.done():
            since = clock.waiting_since
            quiet_for = 0.0 if since is None else loop.time() - max(since, eof_at)
            if quiet_for >= linger:
                break
            await asyncio.wait({down}, timeout=linger - quiet_for)
        if down.done():
            exc = down.exception()
            if isinstance(exc, TunnelError):
                local.close()
                stream.abort()
                finished = True
                raise exc
        else:
            await _cancel(down)
        await stream.close()
        local.close()
        finished = True
    finally:
        if not finished:
            await _cancel(up, down)
            stream.abort()
            local.abort()
