"""What carries a SPDY session's bytes: an upgraded HTTP connection, or a WebSocket.

A session writes without awaiting (`write` buffers, in wire order, which the shared zlib
header context needs) and waits on `drained()` when `buffered` is above its high-water mark;
it is fed what the peer sends through `feed`, and told with `lost` when the connection ends.
`pause_reading` stops feeding (TCP back-pressure) while a stream's consumer lags.

- :class:`RawCarrier` is the asyncio Protocol of a connection after `Upgrade: SPDY/3.1`: the
  socket's bytes go straight to the session's decoder, with nothing in between.
- :class:`WebSocketCarrier` moves the same bytes in binary WebSocket messages (KEP-4006).
  aiohttp's writer is a coroutine, so a writer task owned by the carrier sends what was
  queued, several small frames in one message.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Callable
from typing import Any, Protocol, cast

import aiohttp

HIGH_WATER = 1024 * 1024  # bytes queued towards the peer before writers wait
LOW_WATER = 256 * 1024
# A write smaller than this goes to the transport at once when it is the first since the
# last flush; the ones after it go together at the next turn of the loop: the FINs and
# resets of many connections ending at once cost one TLS record and one send(2), not one
# each, and a lone write (a new connection's streams, its first bytes) waits no turn.
# Measured (bench/tunnel.py --latency-only): handing the first over at once, instead of at
# the next turn, took 0.04 ms off a new connection's p50.
COALESCE_BELOW = 16 * 1024
WS_MESSAGE_MAX = 64 * 1024 + 64  # small frames are joined into messages up to this size
CLOSE_TIMEOUT = 2.0


class Sink(Protocol):
    """The session side of a carrier."""

    def feed(self, data: bytes | memoryview) -> None:
        """What the peer sent; a view of a buffer reused afterwards (copy what is kept)."""
        ...

    def lost(self, reason: str | None) -> None:
        """The connection ended; `reason` None: the peer closed it cleanly."""
        ...


class Carrier(Protocol):
    def write(self, data: bytes) -> None: ...

    @property
    def local_port(self) -> int:
        """This side's port of the connection to the API server (0 when closed)."""
        ...

    @property
    def buffered(self) -> int: ...

    @property
    def writable(self) -> bool:
        """False while more than HIGH_WATER bytes wait: writers then await `drained()`."""
        ...

    async def drained(self) -> None: ...

    def pause_reading(self) -> None: ...

    def resume_reading(self) -> None: ...

    def close(self) -> None:
        """Flush what was written, then close."""
        ...

    def abort(self) -> None: ...

    async def wait_closed(self) -> None: ...


def _port(sockname: object) -> int:
    return int(sockname[1]) if isinstance(sockname, tuple) and len(sockname) >= 2 else 0


class _Drain:
    """Writers wait here while the carrier holds more than HIGH_WATER bytes."""

    __slots__ = ("_event",)

    def __init__(self) -> None:
        self._event = asyncio.Event()
        self._event.set()

    @property
    def open(self) -> bool:
        return self._event.is_set()

    def update(self, buffered: int) -> None:
        if buffered > HIGH_WATER:
            self._event.clear()
        elif buffered <= LOW_WATER:
            self._event.set()

    def release(self) -> None:
        self._event.set()

    async def wait(self) -> None:
        await self._event.wait()


_READ_BUFFER = memoryview(bytearray(256 * 1024))  # shared: filled and parsed in one call


class _Draining:
    """What both carriers say about writing: a _Drain's state and wait."""

    _drain: _Drain

    @property
    def writable(self) -> bool:
        return self._drain.open

    async def drained(self) -> None:
        await self._drain.wait()


class RawCarrier(_Draining, asyncio.BufferedProtocol):
    """The upgraded connection itself, as an asyncio BufferedProtocol: TLS decrypts straight
    into one buffer all sessions share, the session's frame reader parses it in the same call
    and copies out only payloads (no per-read allocation of up to 256 KiB)."""

    def __init__(self, sink: Sink) -> None:
        self._sink = sink
        self._transport: asyncio.Transport | None = None
        self._drain = _Drain()
        self._reading_paused = False
        self._loop = asyncio.get_running_loop()
        self._closed = self._loop.create_future()
        self._pending: list[bytes] = []  # small writes of this loop turn, in order
        self._pending_size = 0
        self._flush_scheduled = False

    # asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # asyncio's, or another loop's (uvloop's are not asyncio.Transport subclasses)
        self._transport = cast(asyncio.Transport, transport)
        self._transport.set_write_buffer_limits(high=HIGH_WATER, low=LOW_WATER)

    def get_buffer(self, sizehint: int) -> memoryview:
        return _READ_BUFFER

    def buffer_updated(self, nbytes: int) -> None:
        self._sink.feed(_READ_BUFFER[:nbytes])

    def eof_received(self) -> bool:
        return False  # SPDY has no half-closed connection: close it

    def connection_lost(self, exc: Exception | None) -> None:
        self._drain.release()
        if not self._closed.done():
            self._closed.set_result(None)
        self._sink.lost(None if exc is None else (str(exc) or type(exc).__name__))

    def pause_writing(self) -> None:
        self._drain.update(HIGH_WATER + 1)

    def resume_writing(self) -> None:
        self._drain.release()

    # Carrier

    def write(self, data: bytes) -> None:
        transport = self._transport
        if transport is None or transport.is_closing():
            raise ConnectionResetError("the tunnel connection is closed")
        if len(data) >= COALESCE_BELOW:
            self._flush()
            transport.write(data)
            return
        if not self._flush_scheduled:
            # The first write since the last flush goes to the transport at once (a new
            # connection's streams, a client's request wait for nothing); the ones after it
            # gather into one write at the next turn of the loop.
            transport.write(data)
            self._flush_scheduled = True
            self._loop.call_soon(self._flush)
            return
        self._pending.append(data)
        self._pending_size += len(data)
        if self._pending_size >= COALESCE_BELOW:
            self._flush()

    def _flush(self) -> None:
        self._flush_scheduled = False
        pending = self._pending
        if not pending:
            return
        data = pending[0] if len(pending) == 1 else b"".join(pending)
        pending.clear()
        self._pending_size = 0
        transport = self._transport
        if transport is not None and not transport.is_closing():
            transport.write(data)

    @property
    def buffered(self) -> int:
        transport = self._transport
        size = transport.get_write_buffer_size() if transport is not None else 0
        return size + self._pending_size

    @property
    def local_port(self) -> int:
        return _port(self._transport.get_extra_info("sockname") if self._transport else None)

    def pause_reading(self) -> None:
        if not self._reading_paused and self._transport is not None:
            self._reading_paused = True
            self._transport.pause_reading()

    def resume_reading(self) -> None:
        if self._reading_paused and self._transport is not None:
            self._reading_paused = False
            if not self._transport.is_closing():
                self._transport.resume_reading()

    def close(self) -> None:
        self._flush()
        if self._transport is not None and not self._transport.is_closing():
            self._transport.close()

    def abort(self) -> None:
        self._pending.clear()
        self._pending_size = 0
        if self._transport is not None:
            self._transport.abort()

    async def wait_closed(self) -> None:
        await asyncio.shield(self._closed)


class WebSocketCarrier(_Draining):
    """SPDY bytes in binary messages of an upgraded WebSocket (`SPDY/3.1+portforward.k8s.io`).

    Owns a reader task (messages -> `feed`) and a writer task (the queue -> messages); both
    end with the WebSocket and are awaited by `wait_closed`.
    """

    def __init__(self, ws: aiohttp.ClientWebSocketResponse, sink: Sink, name: str) -> None:
        self._ws = ws
        self._sink = sink
        self._out: deque[bytes] = deque()
        self._size = 0
        self._drain = _Drain()
        self._has_data = asyncio.Event()
        self._readable = asyncio.Event()
        self._readable.set()
        self._closing = False
        self._ended = False
        self._aborted = False
        self._reader = asyncio.create_task(self._read(), name=f"{name}-ws-reader")
        self._writer = asyncio.create_task(self._write(), name=f"{name}-ws-writer")

    def write(self, data: bytes) -> None:
        if self._closing or self._ended:
            raise ConnectionResetError("the tunnel WebSocket is closed")
        self._out.append(data)
        self._size += len(data)
        self._drain.update(self._size)
        self._has_data.set()

    @property
    def buffered(self) -> int:
        return self._size

    @property
    def local_port(self) -> int:
        return _port(self._ws.get_extra_info("sockname"))

    def pause_reading(self) -> None:
        self._readable.clear()

    def resume_reading(self) -> None:
        self._readable.set()

    def close(self) -> None:
        self._closing = True
        self._has_data.set()  # the writer flushes the queue, then closes the WebSocket

    def abort(self) -> None:
        self._aborted = True
        self._end(None)
        for task in (self._reader, self._writer):
            task.cancel()
        # aiohttp has no public abort for a client WebSocket: closing its response drops the
        # TCP connection without a closing handshake.
        response: Any = getattr(self._ws, "_response", None)
        if response is not None:
            response.close()

    async def wait_closed(self) -> None:
        await asyncio.wait({self._reader, self._writer})
        for task in (self._reader, self._writer):
            if not task.cancelled():
                task.exception()  # both handle their failures; mark retrieved

    def _end(self, reason: str | None) -> None:
        if self._ended:
            return
        self._ended = True
        self._out.clear()
        self._size = 0
        self._drain.release()
        self._has_data.set()
        self._readable.set()
        self._sink.lost(reason)

    async def _read(self) -> None:
        ws = self._ws
        reason: str | None = None
        try:
            while True:
                if not self._readable.is_set():
                    await self._readable.wait()
                    if self._ended:
                        return
                msg = await ws.receive()
                if msg.type is aiohttp.WSMsgType.BINARY:
                    self._sink.feed(msg.data)
                elif msg.type is aiohttp.WSMsgType.TEXT:
                    reason = "a text message on the SPDY tunnel"
                    break
                elif msg.type is aiohttp.WSMsgType.ERROR:
                    reason = f"the tunnel WebSocket failed: {msg.data}"
                    break
                else:  # CLOSE, CLOSING, CLOSED
                    code = ws.close_code
                    if code not in (None, 1000):
                        reason = f"the API server closed the tunnel (WebSocket close {code})"
                    break
        except (aiohttp.ClientError, ConnectionError) as exc:
            reason = f"the tunnel WebSocket failed: {exc}"
        finally:
            self._end(reason)
            if not self._writer.done():
                self._has_data.set()

    async def _write(self) -> None:
        ws = self._ws
        try:
            while not self._ended:
                if not self._out:
                    if self._closing:
                        break
                    self._has_data.clear()
                    await self._has_data.wait()
                    continue
                message = self._take()
                await ws.send_bytes(message)
                self._drain.update(self._size)
        except (aiohttp.ClientError, ConnectionError, RuntimeError) as exc:
            self._end(f"the tunnel WebSocket failed while sending: {exc}")
        finally:
            if not self._aborted:
                # RuntimeError: uvloop's, for a close frame on a transport already closed.
                with contextlib.suppress(
                    aiohttp.ClientError, ConnectionError, TimeoutError, RuntimeError
                ):
                    async with asyncio.timeout(CLOSE_TIMEOUT):
                        await ws.close()
            self._end(None)

    def _take(self) -> bytes:
        """The next message: one large chunk as it is, or several small ones joined."""
        out = self._out
        first = out.popleft()
        if len(first) >= WS_MESSAGE_MAX or not out:
            self._size -= len(first)
            return first
        parts = [first]
        size = len(first)
        while out and size + len(out[0]) <= WS_MESSAGE_MAX:
            part = out.popleft()
            parts.append(part)
            size += len(part)
        self._size -= size
        return b"".join(parts)


CarrierFactory = Callable[[Sink], Carrier]
