"""The server side of a SPDY/3.1 session, as the kubelet (moby/spdystream) runs it.

The framing is the shared codec in `portfwd.wire.spdy`. Like spdystream, this session never
sends WINDOW_UPDATE and sends without regard to windows: a client that waited for credit from
it would stall after 64 KiB (the real kubelet behaves the same, and clients must cope).
Bounded buffers still hold: a stream whose consumer lags stops the frame reader, which is
TCP back-pressure on the whole connection, as in spdystream.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Protocol

from portfwd.wire.spdy import (
    DataFrame,
    Frame,
    FrameDecoder,
    FrameEncoder,
    GoAwayFrame,
    GoAwayStatus,
    Headers,
    HeadersFrame,
    PingFrame,
    RstStatus,
    RstStreamFrame,
    SettingsFrame,
    SpdyProtocolError,
    SynReplyFrame,
    SynStreamFrame,
    WindowUpdateFrame,
)

__all__ = ["STREAM_BUFFER", "SpdySession", "SpdyStream"]

log = logging.getLogger(__name__)

# DATA frames this session sends carry at most this much (spdystream accepts any length).
MAX_SEND_CHUNK = 64 * 1024
# Bytes a stream may hold that its consumer has not taken yet before the frame reader waits.
STREAM_BUFFER = 256 * 1024

# --- session --------------------------------------------------------------------------------


class ByteSource(Protocol):
    """Where the session reads the peer's bytes (asyncio.StreamReader fits)."""

    async def readexactly(self, n: int) -> bytes: ...


Send = Callable[[bytes], Awaitable[None]]


@dataclass(eq=False)
class SpdyStream:
    """One stream the peer opened: a byte pipe each way with its own FIN."""

    session: SpdySession
    stream_id: int
    headers: Headers
    remote_fin: bool = False
    local_fin: bool = False
    reset: bool = False
    released: bool = False
    _chunks: deque[bytes] = field(default_factory=deque)
    _buffered: int = 0
    _readable: asyncio.Event = field(default_factory=asyncio.Event)
    _space: asyncio.Event = field(default_factory=asyncio.Event)

    def header(self, name: str) -> str:
        """The first value of a header, "" when absent (like Go's Header.Get)."""
        values = self.headers.get(name.lower())
        return values[0] if values else ""

    @property
    def done(self) -> bool:
        return self.reset or (self.remote_fin and self.local_fin)

    async def read(self) -> bytes:
        """The next chunk the peer sent; b"" once it sent FIN (or the stream/session ended).

        No WINDOW_UPDATE is ever sent (spdystream sends none): a slow consumer slows the peer
        down only by stopping the session's reader (see `_feed`).
        """
        while not self._chunks:
            if self.remote_fin or self.reset or self.released:
                return b""
            self._readable.clear()
            await self._readable.wait()
        chunk = self._chunks.popleft()
        self._buffered -= len(chunk)
        if self._buffered < STREAM_BUFFER:
            self._space.set()
        return chunk

    async def write(self, data: bytes) -> None:
        """Send bytes as DATA frames, whatever the windows say (as spdystream does)."""
        view = memoryview(data)
        while view:
            if self.reset or self.local_fin:
                raise ConnectionResetError(f"SPDY stream {self.stream_id} is closed")
            size = min(len(view), MAX_SEND_CHUNK)
            await self.session.send_frame(DataFrame(self.stream_id, bytes(view[:size])))
            view = view[size:]

    async def close(self) -> None:
        """Half-close: FIN on our side (the peer may go on sending)."""
        if self.local_fin or self.reset:
            return
        self.local_fin = True
        try:
            await self.session.send_frame(DataFrame(self.stream_id, b"", fin=True))
        finally:
            self.session.forget_if_done(self)

    def release(self) -> None:
        """The owner is done with this stream: forget it, drop whatever the peer still sends.

        Like apimachinery's RemoveStreams: nothing goes on the wire, but data the peer keeps
        sending can no longer fill a buffer nobody reads (which would stall the connection).
        """
        self.released = True
        self._chunks.clear()
        self._buffered = 0
        self._readable.set()
        self._space.set()
        if self.session.streams.get(self.stream_id) is self:
            del self.session.streams[self.stream_id]

    async def send_reset(self, status: int = RstStatus.CANCEL) -> None:
        if self.reset:
            return
        self._abort()
        try:
            await self.session.send_frame(RstStreamFrame(self.stream_id, status))
        finally:
            self.session.forget_if_done(self)

    # Called by the session's reader.

    async def _feed(self, data: bytes, fin: bool) -> None:
        if data and not (self.remote_fin or self.reset or self.released):
            while self._buffered >= STREAM_BUFFER and not (
                self.reset or self.released or self.session.closed
            ):
                self._space.clear()
                await self._space.wait()  # back-pressure: stop reading the connection
            if not (self.reset or self.released):
                self._chunks.append(data)
                self._buffered += len(data)
        if fin:
            self.remote_fin = True
        self._readable.set()

    def _abort(self) -> None:
        """Reset either way: both directions end now, buffered data is dropped."""
        self.reset = True
        self._chunks.clear()
        self._buffered = 0
        self._readable.set()
        self._space.set()


class SpdySession:
    """The server side of one SPDY/3.1 connection: the peer opens streams, we answer them.

    `validate(stream)` returns None to accept a new stream (SYN_REPLY) or a reason to refuse it
    (RST_STREAM CANCEL, as spdystream's server does); accepted streams go to `on_stream`.
    `send` writes bytes to the peer and waits while its buffer is full; `source` gives the
    peer's bytes. `run()` returns when the peer goes away.
    """

    def __init__(
        self,
        source: ByteSource,
        send: Send,
        *,
        validate: Callable[[SpdyStream], str | None],
        on_stream: Callable[[SpdyStream], None],
        name: str = "spdy",
    ) -> None:
        self._source = source
        self._send = send
        self._validate = validate
        self._on_stream = on_stream
        self.name = name
        self._encoder = FrameEncoder()
        self._decoder = FrameDecoder()
        self.streams: dict[int, SpdyStream] = {}
        self._last_peer_stream = 0
        self.gone_away = False
        self.closed = False
        self.orphaned = False

    async def send_frame(self, frame: Frame) -> None:
        if self.closed:
            raise ConnectionResetError("SPDY session closed")
        # Encoding (which advances the header compressor) and handing the bytes to the transport
        # happen with no suspension in between, so blocks reach the peer in compression order.
        await self._send(self._encoder.encode(frame))

    def forget_if_done(self, stream: SpdyStream) -> None:
        if stream.done and self.streams.get(stream.stream_id) is stream:
            del self.streams[stream.stream_id]

    async def run(self) -> None:
        try:
            while True:
                head = FrameDecoder.parse_head(await self._source.readexactly(8))
                self._decoder.check_length(head)
                body = await self._source.readexactly(head.length) if head.length else b""
                frame = self._decoder.decode(head, body)
                if frame is not None:
                    await self._dispatch(frame)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass  # the peer went away
        except SpdyProtocolError as exc:
            log.debug("%s: protocol error: %s", self.name, exc)
            with contextlib.suppress(ConnectionError):
                await self.send_frame(
                    GoAwayFrame(self._last_peer_stream, GoAwayStatus.PROTOCOL_ERROR)
                )
        finally:
            self.close()

    def orphan(self) -> None:
        """The kubelet behind this session went away, but what carries it stays open: an
        API server that converted the client's WebSocket to SPDY towards a kubelet that
        restarted (node mode A, docs/protocols.md section 4). Open streams go silent; pings are not
        answered; each new stream is accepted and closed with no data."""
        self.orphaned = True
        for stream in list(self.streams.values()):
            stream._abort()
        self.streams.clear()

    def close(self) -> None:
        """Mark the session over: every stream reads EOF and refuses writes."""
        self.closed = True
        for stream in list(self.streams.values()):
            stream._abort()
        self.streams.clear()

    async def _dispatch(self, frame: Frame) -> None:
        if isinstance(frame, DataFrame):
            stream = self.streams.get(frame.stream_id)
            if stream is not None:  # data for a stream that is gone: dropped, as spdystream
                await stream._feed(frame.data, frame.fin)
                self.forget_if_done(stream)
        elif isinstance(frame, SynStreamFrame):
            await self._new_stream(frame)
        elif isinstance(frame, RstStreamFrame):
            stream = self.streams.pop(frame.stream_id, None)
            if stream is not None:
                stream._abort()
        elif isinstance(frame, PingFrame):
            if frame.ping_id % 2 == 1 and not self.orphaned:  # the client's (odd ids): echo
                await self.send_frame(frame)
        elif isinstance(frame, WindowUpdateFrame | SettingsFrame):
            pass  # spdystream keeps no windows: credit and window settings change nothing
        elif isinstance(frame, GoAwayFrame):
            self.gone_away = True
        elif isinstance(frame, HeadersFrame):
            stream = self.streams.get(frame.stream_id)
            if stream is not None:
                for name, values in frame.headers.items():
                    stream.headers.setdefault(name, []).extend(values)
                if frame.fin:
                    await stream._feed(b"", True)
                    self.forget_if_done(stream)
        # SYN_REPLY: this side never opens streams, so there is nothing to answer.

    async def _new_stream(self, frame: SynStreamFrame) -> None:
        sid = frame.stream_id
        if self.gone_away:
            return
        if sid % 2 == 0 or sid <= self._last_peer_stream:
            # Client streams are odd and increasing (spdystream's validateStreamId).
            await self.send_frame(RstStreamFrame(sid, RstStatus.PROTOCOL_ERROR))
            return
        self._last_peer_stream = sid
        if self.orphaned:
            if not frame.unidirectional:
                await self.send_frame(SynReplyFrame(sid, {}))
            await self.send_frame(DataFrame(sid, b"", fin=True))
            return
        stream = SpdyStream(self, sid, frame.headers)
        stream.remote_fin = frame.fin
        stream.local_fin = frame.unidirectional
        reason = self._validate(stream)
        if reason is not None:
            log.debug("%s: refusing stream %d: %s", self.name, sid, reason)
            await self.send_frame(RstStreamFrame(sid, RstStatus.CANCEL))
            return
        self.streams[sid] = stream
        if not stream.local_fin:
            await self.send_frame(SynReplyFrame(sid, {}))
        self._on_stream(stream)
