"""SPDY/3.1 framing and the server side of a SPDY session, as kubectl and the kubelet speak it.

kubectl's port-forward runs on github.com/moby/spdystream (through apimachinery's
`httpstream/spdy`), so this module follows what that library puts on the wire rather than every
corner of the SPDY/3.1 draft:

- frames: 8-byte head (control bit, version 3, type / stream id, flags, 24-bit length);
- header blocks (SYN_STREAM, SYN_REPLY, HEADERS) are zlib streams primed with the SPDY/3
  dictionary, ONE compression context per direction for the whole session, each block ended
  with a sync flush, so every header block must be (de)compressed in wire order, even ignored
  ones;
- flow control: spdystream neither sends WINDOW_UPDATE nor honours windows, so a sender that
  waited for credit from it would stall after 64 KiB. This session grants credit as its
  consumers take data (harmless to peers that ignore it) and enforces its own send windows only
  once the peer has shown it keeps them (a WINDOW_UPDATE or an INITIAL_WINDOW_SIZE setting).
  Bounded buffers still hold: a stream whose consumer lags stops the frame reader, which is
  TCP back-pressure on the whole connection, as in spdystream.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import struct
import zlib
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Protocol

__all__ = [
    "DEFAULT_WINDOW",
    "FLAG_FIN",
    "FLAG_UNIDIRECTIONAL",
    "HEADER_DICTIONARY",
    "DataFrame",
    "Frame",
    "FrameDecoder",
    "FrameEncoder",
    "FrameType",
    "GoAwayFrame",
    "GoAwayStatus",
    "HeaderCompressor",
    "HeaderDecompressor",
    "Headers",
    "HeadersFrame",
    "PingFrame",
    "RstStatus",
    "RstStreamFrame",
    "SettingsFrame",
    "SpdyProtocolError",
    "SpdySession",
    "SpdyStream",
    "SynReplyFrame",
    "SynStreamFrame",
    "WindowUpdateFrame",
    "decode_header_block",
    "encode_header_block",
]

log = logging.getLogger(__name__)

VERSION = 3
FLAG_FIN = 0x01
FLAG_UNIDIRECTIONAL = 0x02
FLAG_SETTINGS_CLEAR = 0x01
SETTINGS_INITIAL_WINDOW_SIZE = 7
DEFAULT_WINDOW = 64 * 1024
MAX_FRAME_LENGTH = 0xFFFFFF
# A decompressed header block larger than this is an attack or a bug, not headers.
MAX_HEADER_BLOCK = 256 * 1024
# DATA frames this session sends carry at most this much (spdystream accepts any length).
MAX_SEND_CHUNK = 64 * 1024
# Bytes a stream may hold that its consumer has not taken yet before the frame reader waits.
STREAM_BUFFER = 256 * 1024


class FrameType(IntEnum):
    SYN_STREAM = 1
    SYN_REPLY = 2
    RST_STREAM = 3
    SETTINGS = 4
    PING = 6
    GOAWAY = 7
    HEADERS = 8
    WINDOW_UPDATE = 9


class RstStatus(IntEnum):
    PROTOCOL_ERROR = 1
    INVALID_STREAM = 2
    REFUSED_STREAM = 3
    UNSUPPORTED_VERSION = 4
    CANCEL = 5
    INTERNAL_ERROR = 6
    FLOW_CONTROL_ERROR = 7
    STREAM_IN_USE = 8
    STREAM_ALREADY_CLOSED = 9
    INVALID_CREDENTIALS = 10
    FRAME_TOO_LARGE = 11


class GoAwayStatus(IntEnum):
    OK = 0
    PROTOCOL_ERROR = 1
    INTERNAL_ERROR = 2


def _spdy3_dictionary() -> bytes:
    """The SPDY/3 header dictionary: length-prefixed words, then a literal tail (the spec's)."""
    words = (
        "options",
        "head",
        "post",
        "put",
        "delete",
        "trace",
        "accept",
        "accept-charset",
        "accept-encoding",
        "accept-language",
        "accept-ranges",
        "age",
        "allow",
        "authorization",
        "cache-control",
        "connection",
        "content-base",
        "content-encoding",
        "content-language",
        "content-length",
        "content-location",
        "content-md5",
        "content-range",
        "content-type",
        "date",
        "etag",
        "expect",
        "expires",
        "from",
        "host",
        "if-match",
        "if-modified-since",
        "if-none-match",
        "if-range",
        "if-unmodified-since",
        "last-modified",
        "location",
        "max-forwards",
        "pragma",
        "proxy-authenticate",
        "proxy-authorization",
        "range",
        "referer",
        "retry-after",
        "server",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "user-agent",
        "vary",
        "via",
        "warning",
        "www-authenticate",
        "method",
        "get",
        "status",
        "200 OK",
        "version",
        "HTTP/1.1",
        "url",
        "public",
        "set-cookie",
        "keep-alive",
        "origin",
    )
    out = bytearray()
    for word in words:
        out += struct.pack("!I", len(word)) + word.encode("ascii")
    out += (
        b"100101201202205206300302303304305306307402405406407408409410411412413414415416417"
        b"502504505203 Non-Authoritative Information204 No Content301 Moved Permanently"
        b"400 Bad Request401 Unauthorized403 Forbidden404 Not Found500 Internal Server Error"
        b"501 Not Implemented503 Service UnavailableJan Feb Mar Apr May Jun Jul Aug Sept Oct "
        b"Nov Dec 00:00:00 Mon, Tue, Wed, Thu, Fri, Sat, Sun, GMTchunked,text/html,image/png,"
        b"image/jpg,image/gif,application/xml,application/xhtml+xml,text/plain,"
        b"text/javascript,publicprivatemax-age=gzip,deflate,sdchcharset=utf-8"
        b"charset=iso-8859-1,utf-,*,enq=0."
    )
    return bytes(out)


HEADER_DICTIONARY = _spdy3_dictionary()

# Header names are lowercase on the wire; a name can carry several values.
Headers = dict[str, list[str]]


class SpdyProtocolError(Exception):
    """The peer broke the framing: the session cannot continue (GOAWAY PROTOCOL_ERROR)."""


# --- frames ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class DataFrame:
    stream_id: int
    data: bytes
    fin: bool = False


@dataclass(frozen=True)
class SynStreamFrame:
    stream_id: int
    headers: Headers
    associated_to: int = 0
    priority: int = 0
    slot: int = 0
    fin: bool = False
    unidirectional: bool = False


@dataclass(frozen=True)
class SynReplyFrame:
    stream_id: int
    headers: Headers
    fin: bool = False


@dataclass(frozen=True)
class RstStreamFrame:
    stream_id: int
    status: int


@dataclass(frozen=True)
class SettingsFrame:
    # (flags, id, value) triples, in wire order.
    entries: tuple[tuple[int, int, int], ...] = ()
    clear: bool = False


@dataclass(frozen=True)
class PingFrame:
    ping_id: int


@dataclass(frozen=True)
class GoAwayFrame:
    last_good_stream_id: int
    status: int = GoAwayStatus.OK


@dataclass(frozen=True)
class HeadersFrame:
    stream_id: int
    headers: Headers
    fin: bool = False


@dataclass(frozen=True)
class WindowUpdateFrame:
    stream_id: int
    delta: int


Frame = (
    DataFrame
    | SynStreamFrame
    | SynReplyFrame
    | RstStreamFrame
    | SettingsFrame
    | PingFrame
    | GoAwayFrame
    | HeadersFrame
    | WindowUpdateFrame
)


# --- header blocks --------------------------------------------------------------------------


def encode_header_block(headers: Mapping[str, Iterable[str]]) -> bytes:
    """The uncompressed name/value block: names lowercased, several values joined by NUL."""
    out = bytearray(struct.pack("!I", len(headers)))
    for name, values in headers.items():
        raw_name = name.lower().encode()
        raw_value = "\x00".join(values).encode()
        out += struct.pack("!I", len(raw_name)) + raw_name
        out += struct.pack("!I", len(raw_value)) + raw_value
    return bytes(out)


def decode_header_block(raw: bytes) -> Headers:
    """Parse an uncompressed name/value block; names are lowercased like spdystream does."""
    try:
        (count,) = struct.unpack_from("!I", raw, 0)
        offset = 4
        headers: Headers = {}
        for _ in range(count):
            (name_len,) = struct.unpack_from("!I", raw, offset)
            offset += 4
            raw_name = raw[offset : offset + name_len]
            if len(raw_name) != name_len:
                raise SpdyProtocolError("truncated header name")
            name = raw_name.decode()
            offset += name_len
            (value_len,) = struct.unpack_from("!I", raw, offset)
            offset += 4
            value = raw[offset : offset + value_len]
            if len(value) != value_len:
                raise SpdyProtocolError("truncated header value")
            offset += value_len
            headers.setdefault(name.lower(), []).extend(value.decode().split("\x00"))
    except (struct.error, UnicodeDecodeError) as exc:
        raise SpdyProtocolError(f"malformed header block: {exc}") from exc
    return headers


class HeaderCompressor:
    """One direction's zlib context: every block is compressed then sync-flushed, in order."""

    def __init__(self) -> None:
        self._z = zlib.compressobj(
            zlib.Z_BEST_COMPRESSION, zlib.DEFLATED, 15, zdict=HEADER_DICTIONARY
        )

    def compress(self, headers: Mapping[str, Iterable[str]]) -> bytes:
        block = encode_header_block(headers)
        return self._z.compress(block) + self._z.flush(zlib.Z_SYNC_FLUSH)


class HeaderDecompressor:
    """The peer's zlib context: must see every header block of the session, in wire order."""

    def __init__(self) -> None:
        self._z = zlib.decompressobj(zdict=HEADER_DICTIONARY)

    def decompress(self, data: bytes) -> Headers:
        try:
            raw = self._z.decompress(data, MAX_HEADER_BLOCK)
        except zlib.error as exc:
            raise SpdyProtocolError(f"header block does not decompress: {exc}") from exc
        if self._z.unconsumed_tail:
            raise SpdyProtocolError("header block too large")
        return decode_header_block(raw)


# --- encoding and decoding ------------------------------------------------------------------


def _control_head(frame_type: int, flags: int, length: int) -> bytes:
    if length > MAX_FRAME_LENGTH:
        raise ValueError(f"frame too long: {length} bytes")
    return struct.pack("!HHI", 0x8000 | VERSION, frame_type, (flags << 24) | length)


class FrameEncoder:
    """Frames to bytes for one direction of one session (it owns the header compressor)."""

    def __init__(self) -> None:
        self._compressor = HeaderCompressor()

    def encode(self, frame: Frame) -> bytes:
        if isinstance(frame, DataFrame):
            if not 0 < frame.stream_id < 0x80000000:
                raise ValueError("DATA needs a stream id in 1..2^31-1")
            if len(frame.data) > MAX_FRAME_LENGTH:
                raise ValueError(f"frame too long: {len(frame.data)} bytes")
            flags = FLAG_FIN if frame.fin else 0
            head = struct.pack("!II", frame.stream_id, (flags << 24) | len(frame.data))
            return head + frame.data
        if isinstance(frame, SynStreamFrame):
            block = self._compressor.compress(frame.headers)
            flags = (FLAG_FIN if frame.fin else 0) | (
                FLAG_UNIDIRECTIONAL if frame.unidirectional else 0
            )
            body = struct.pack(
                "!IIBB",
                frame.stream_id & 0x7FFFFFFF,
                frame.associated_to & 0x7FFFFFFF,
                (frame.priority & 0x7) << 5,
                frame.slot,
            )
            return _control_head(FrameType.SYN_STREAM, flags, len(body) + len(block)) + body + block
        if isinstance(frame, SynReplyFrame | HeadersFrame):
            block = self._compressor.compress(frame.headers)
            kind = FrameType.SYN_REPLY if isinstance(frame, SynReplyFrame) else FrameType.HEADERS
            flags = FLAG_FIN if frame.fin else 0
            body = struct.pack("!I", frame.stream_id & 0x7FFFFFFF)
            return _control_head(kind, flags, 4 + len(block)) + body + block
        if isinstance(frame, RstStreamFrame):
            body = struct.pack("!II", frame.stream_id & 0x7FFFFFFF, frame.status)
            return _control_head(FrameType.RST_STREAM, 0, 8) + body
        if isinstance(frame, SettingsFrame):
            settings = bytearray(struct.pack("!I", len(frame.entries)))
            for flags, ident, value in frame.entries:
                settings += struct.pack("!II", (flags << 24) | (ident & 0xFFFFFF), value)
            clear = FLAG_SETTINGS_CLEAR if frame.clear else 0
            return _control_head(FrameType.SETTINGS, clear, len(settings)) + bytes(settings)
        if isinstance(frame, PingFrame):
            return _control_head(FrameType.PING, 0, 4) + struct.pack("!I", frame.ping_id)
        if isinstance(frame, GoAwayFrame):
            body = struct.pack("!II", frame.last_good_stream_id & 0x7FFFFFFF, frame.status)
            return _control_head(FrameType.GOAWAY, 0, 8) + body
        if isinstance(frame, WindowUpdateFrame):
            body = struct.pack("!II", frame.stream_id & 0x7FFFFFFF, frame.delta & 0x7FFFFFFF)
            return _control_head(FrameType.WINDOW_UPDATE, 0, 8) + body
        raise TypeError(f"not a SPDY frame: {frame!r}")


@dataclass(frozen=True)
class FrameHead:
    """The first 8 bytes of a frame: enough to know how many more bytes to read."""

    control: bool
    version: int
    frame_type: int  # control frames
    stream_id: int  # data frames
    flags: int
    length: int


class FrameDecoder:
    """Bytes to frames for one direction of one session (it owns the header decompressor)."""

    def __init__(self, max_length: int = MAX_FRAME_LENGTH) -> None:
        self._decompressor = HeaderDecompressor()
        self._max_length = max_length
        self._buffer: bytearray = bytearray()

    @staticmethod
    def parse_head(head: bytes) -> FrameHead:
        first, second = struct.unpack("!II", head)
        flags, length = second >> 24, second & 0xFFFFFF
        if first & 0x80000000:
            return FrameHead(True, (first >> 16) & 0x7FFF, first & 0xFFFF, 0, flags, length)
        return FrameHead(False, 0, 0, first & 0x7FFFFFFF, flags, length)

    def check_length(self, head: FrameHead) -> None:
        if head.length > self._max_length:
            raise SpdyProtocolError(f"frame of {head.length} bytes exceeds {self._max_length}")

    def decode(self, head: FrameHead, body: bytes) -> Frame | None:
        """The frame, or None for a control type this session does not know (skipped)."""
        if not head.control:
            if head.stream_id == 0:
                raise SpdyProtocolError("DATA frame on stream 0")
            return DataFrame(head.stream_id, bytes(body), bool(head.flags & FLAG_FIN))
        if head.version != VERSION:
            raise SpdyProtocolError(f"unsupported SPDY version {head.version}")
        kind = head.frame_type
        fin = bool(head.flags & FLAG_FIN)
        try:
            if kind == FrameType.SYN_STREAM:
                stream_id, assoc, prio, slot = struct.unpack_from("!IIBB", body, 0)
                headers = self._decompressor.decompress(body[10:])
                if stream_id & 0x7FFFFFFF == 0:
                    raise SpdyProtocolError("SYN_STREAM on stream 0")
                return SynStreamFrame(
                    stream_id & 0x7FFFFFFF,
                    headers,
                    assoc & 0x7FFFFFFF,
                    prio >> 5,
                    slot,
                    fin,
                    bool(head.flags & FLAG_UNIDIRECTIONAL),
                )
            if kind in (FrameType.SYN_REPLY, FrameType.HEADERS):
                (stream_id,) = struct.unpack_from("!I", body, 0)
                headers = self._decompressor.decompress(body[4:])
                if kind == FrameType.SYN_REPLY:
                    return SynReplyFrame(stream_id & 0x7FFFFFFF, headers, fin)
                return HeadersFrame(stream_id & 0x7FFFFFFF, headers, fin)
            if kind == FrameType.RST_STREAM:
                stream_id, status = struct.unpack_from("!II", body, 0)
                return RstStreamFrame(stream_id & 0x7FFFFFFF, status)
            if kind == FrameType.SETTINGS:
                (count,) = struct.unpack_from("!I", body, 0)
                entries = []
                for i in range(count):
                    flag_id, value = struct.unpack_from("!II", body, 4 + 8 * i)
                    entries.append((flag_id >> 24, flag_id & 0xFFFFFF, value))
                return SettingsFrame(tuple(entries), bool(head.flags & FLAG_SETTINGS_CLEAR))
            if kind == FrameType.PING:
                (ping_id,) = struct.unpack_from("!I", body, 0)
                return PingFrame(ping_id)
            if kind == FrameType.GOAWAY:
                last_good, status = struct.unpack_from("!II", body, 0)
                return GoAwayFrame(last_good & 0x7FFFFFFF, status)
            if kind == FrameType.WINDOW_UPDATE:
                stream_id, delta = struct.unpack_from("!II", body, 0)
                return WindowUpdateFrame(stream_id & 0x7FFFFFFF, delta & 0x7FFFFFFF)
        except struct.error as exc:
            raise SpdyProtocolError(f"short {FrameType(kind).name} frame") from exc
        return None

    def feed(self, data: bytes) -> list[Frame]:
        """Buffered decoding of a byte stream (tests and simple clients)."""
        self._buffer += data
        frames: list[Frame] = []
        while len(self._buffer) >= 8:
            head = self.parse_head(bytes(self._buffer[:8]))
            self.check_length(head)
            if len(self._buffer) < 8 + head.length:
                break
            body = bytes(self._buffer[8 : 8 + head.length])
            del self._buffer[: 8 + head.length]
            frame = self.decode(head, body)
            if frame is not None:
                frames.append(frame)
        return frames


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
    send_window: int
    remote_fin: bool = False
    local_fin: bool = False
    reset: bool = False
    released: bool = False
    _chunks: deque[bytes] = field(default_factory=deque)
    _buffered: int = 0
    _unacked: int = 0
    _readable: asyncio.Event = field(default_factory=asyncio.Event)
    _space: asyncio.Event = field(default_factory=asyncio.Event)
    _window_open: asyncio.Event = field(default_factory=asyncio.Event)

    def header(self, name: str) -> str:
        """The first value of a header, "" when absent (like Go's Header.Get)."""
        values = self.headers.get(name.lower())
        return values[0] if values else ""

    @property
    def done(self) -> bool:
        return self.reset or (self.remote_fin and self.local_fin)

    async def read(self) -> bytes:
        """The next chunk the peer sent; b"" once it sent FIN (or the stream/session ended).

        Asking for more means the previous chunk has been dealt with: that is when the peer gets
        its window back, so a slow consumer slows a flow-controlled peer down.
        """
        await self._grant_credit()
        while not self._chunks:
            if self.remote_fin or self.reset or self.released:
                return b""
            self._readable.clear()
            await self._readable.wait()
        chunk = self._chunks.popleft()
        self._buffered -= len(chunk)
        self._unacked += len(chunk)
        if self._buffered < STREAM_BUFFER:
            self._space.set()
        return chunk

    async def _grant_credit(self) -> None:
        if self._unacked >= DEFAULT_WINDOW // 2 and not (self.remote_fin or self.reset):
            delta, self._unacked = self._unacked, 0
            with contextlib.suppress(ConnectionError):
                await self.session.send_frame(WindowUpdateFrame(self.stream_id, delta))

    async def write(self, data: bytes) -> None:
        """Send bytes as DATA frames, within the send window when the peer keeps windows."""
        view = memoryview(data)
        while view:
            if self.reset or self.local_fin:
                raise ConnectionResetError(f"SPDY stream {self.stream_id} is closed")
            size = min(len(view), MAX_SEND_CHUNK)
            if self.session.peer_flow_control:
                while self.send_window <= 0:
                    self._window_open.clear()
                    await self._window_open.wait()
                    if self.reset or self.session.closed:
                        raise ConnectionResetError(f"SPDY stream {self.stream_id} was reset")
                size = min(size, self.send_window)
            self.send_window -= size
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
        self._window_open.set()
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
        self._window_open.set()

    def _add_window(self, delta: int) -> None:
        self.send_window += delta
        if self.send_window > 0:
            self._window_open.set()


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
        self._initial_window = DEFAULT_WINDOW
        self.peer_flow_control = False
        self.gone_away = False
        self.closed = False

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
            if frame.ping_id % 2 == 1:  # the client's ping (odd ids): echo it
                await self.send_frame(frame)
        elif isinstance(frame, WindowUpdateFrame):
            self.peer_flow_control = True
            stream = self.streams.get(frame.stream_id)
            if stream is not None:
                stream._add_window(frame.delta)
        elif isinstance(frame, SettingsFrame):
            for _flags, ident, value in frame.entries:
                if ident == SETTINGS_INITIAL_WINDOW_SIZE:
                    self.peer_flow_control = True
                    delta = value - self._initial_window
                    self._initial_window = value
                    for stream in self.streams.values():
                        stream._add_window(delta)
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
        stream = SpdyStream(self, sid, frame.headers, send_window=self._initial_window)
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
