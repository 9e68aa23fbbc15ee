"""SPDY/3.1 framing as kubectl and the kubelet put it on the wire: a pure codec, no I/O.

Both sides of portfwd use this one codec: the client's sessions (`portfwd.tunnel.spdy`) and the
sandbox's kubelet (`portfwd.sandbox.spdy`). kubectl's port-forward runs on
github.com/moby/spdystream (through apimachinery's `httpstream/spdy`), so this follows what
that library puts on the wire rather than every corner of the SPDY/3.1 draft:

- frames: 8-byte head (control bit, version 3, type / stream id, flags, 24-bit length);
- header blocks (SYN_STREAM, SYN_REPLY, HEADERS) are zlib streams primed with the SPDY/3
  dictionary, ONE compression context per direction for the whole session, each block ended
  with a sync flush, so every header block must be (de)compressed in wire order, even ignored
  ones;
- flow control: spdystream neither sends WINDOW_UPDATE nor honours windows. The codec knows the
  frames; what a session does with them is the session's business.

:class:`FrameReader` is the incremental decoder for sessions that get bytes in arbitrary
chunks: control frames come out whole, DATA payloads are handed on piece by piece as they
arrive, so a large frame is never buffered whole.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import IntEnum

__all__ = [
    "DEFAULT_WINDOW",
    "FLAG_FIN",
    "FLAG_UNIDIRECTIONAL",
    "HEADER_DICTIONARY",
    "MAX_CONTROL_LENGTH",
    "DataFrame",
    "DataPiece",
    "Frame",
    "FrameDecoder",
    "FrameEncoder",
    "FrameHead",
    "FrameReader",
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
    "SynReplyFrame",
    "SynStreamFrame",
    "WindowUpdateFrame",
    "data_head",
    "decode_header_block",
    "encode_header_block",
]

VERSION = 3
FLAG_FIN = 0x01
FLAG_UNIDIRECTIONAL = 0x02
FLAG_SETTINGS_CLEAR = 0x01
SETTINGS_INITIAL_WINDOW_SIZE = 7
DEFAULT_WINDOW = 64 * 1024
MAX_FRAME_LENGTH = 0xFFFFFF
# A decompressed header block larger than this is an attack or a bug, not headers.
MAX_HEADER_BLOCK = 256 * 1024


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


HEADER_WINDOW_BITS = 9  # zlib's smallest window: 512 bytes
HEADER_MEM_LEVEL = 1  # zlib's smallest hash table


class HeaderCompressor:
    """One direction's zlib context: every block is compressed then sync-flushed, in order."""

    def __init__(self) -> None:
        # Any level reads back the same; the default one costs half of the best's per block
        # (a port-forward connection compresses two small blocks on its critical path).
        # The smallest window and hash (512 B, memLevel 1) instead of zlib's defaults: a
        # session lives as long as its forward, and the defaults cost ~100 KiB of touched
        # memory each (256 KiB allocated) to compress blocks of some 60 bytes. Readers take
        # any window up to 32 KiB (zlib's from the stream header; Go's, the kubelet's, keeps
        # 32 KiB whatever it says), and the dictionary's checksum covers all of it.
        self._z = zlib.compressobj(
            zlib.Z_DEFAULT_COMPRESSION,
            zlib.DEFLATED,
            HEADER_WINDOW_BITS,
            HEADER_MEM_LEVEL,
            zdict=HEADER_DICTIONARY,
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


# --- incremental reading --------------------------------------------------------------------

# A control frame longer than this is refused: header blocks are small (a SYN_STREAM of a
# port-forward is ~40 bytes), and the decompressed size is capped separately.
MAX_CONTROL_LENGTH = 1024 * 1024


def data_head(stream_id: int, length: int, fin: bool = False) -> bytes:
    """The 8-byte head of a DATA frame, so a payload can be written after it without a copy."""
    if not 0 < stream_id < 0x80000000:
        raise ValueError("DATA needs a stream id in 1..2^31-1")
    if length > MAX_FRAME_LENGTH:
        raise ValueError(f"frame too long: {length} bytes")
    return struct.pack("!II", stream_id, ((FLAG_FIN if fin else 0) << 24) | length)


@dataclass(frozen=True, slots=True)
class DataPiece:
    """Part of a DATA frame's payload, in order; `fin` is set on the last piece of a frame
    that carries FLAG_FIN (that piece may be empty)."""

    stream_id: int
    data: bytes
    fin: bool = False


class FrameReader:
    """Bytes in any chunking -> control frames (whole) and DATA pieces (as they arrive).

    One reader per direction of a session: it owns that direction's header decompressor, so
    every chunk must be fed, in order. A chunk that is exactly one DATA payload is passed on
    without a copy (the WebSocket tunnel usually carries payloads as messages of their own).
    """

    __slots__ = ("_control", "_decoder", "_head", "_max_control", "_pending", "_remaining")

    def __init__(self, max_control_length: int = MAX_CONTROL_LENGTH) -> None:
        self._decoder = FrameDecoder()
        self._max_control = max_control_length
        self._pending = b""  # a frame head split across chunks
        self._head: FrameHead | None = None
        self._remaining = 0  # bytes of the current frame's body still to come
        self._control = bytearray()

    def feed(self, data: bytes | memoryview) -> list[Frame | DataPiece]:
        """Everything `data` completes; raises SpdyProtocolError on broken framing.

        `data` may be a view of a buffer the caller reuses: what is kept is copied out."""
        out: list[Frame | DataPiece] = []
        pos, end = 0, len(data)
        while pos < end:
            head = self._head
            if head is None:
                if self._pending or end - pos < 8:
                    need = 8 - len(self._pending)
                    self._pending += data[pos : pos + need]
                    pos += min(need, end - pos)
                    if len(self._pending) < 8:
                        break
                    raw, self._pending = self._pending, b""
                else:
                    raw = bytes(data[pos : pos + 8])
                    pos += 8
                head = self._start(FrameDecoder.parse_head(raw))
                if head.length == 0:
                    self._finish(head, out)
                continue
            take = min(self._remaining, end - pos)
            if head.control:
                self._control += data[pos : pos + take]
            else:
                if take == end and isinstance(data, bytes):
                    piece = data
                else:
                    piece = bytes(data[pos : pos + take])
                last = take == self._remaining
                out.append(DataPiece(head.stream_id, piece, last and bool(head.flags & FLAG_FIN)))
            pos += take
            self._remaining -= take
            if self._remaining == 0:
                self._finish(head, out)
        return out

    def _start(self, head: FrameHead) -> FrameHead:
        if head.control:
            if head.length > self._max_control:
                raise SpdyProtocolError(
                    f"control frame of {head.length} bytes exceeds {self._max_control}"
                )
        elif head.stream_id == 0:
            raise SpdyProtocolError("DATA frame on stream 0")
        self._head, self._remaining = head, head.length
        return head

    def _finish(self, head: FrameHead, out: list[Frame | DataPiece]) -> None:
        self._head = None
        if not head.control:
            if head.length == 0 and head.flags & FLAG_FIN:
                out.append(DataPiece(head.stream_id, b"", True))
            return
        body, self._control = bytes(self._control), bytearray()
        frame = self._decoder.decode(head, body)
        if frame is not None:
            out.append(frame)
