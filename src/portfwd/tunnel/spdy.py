"""The client side of a SPDY/3.1 session, as the kubelet's spdystream expects it.

One session per pod carries every connection to it: a new local connection costs two
SYN_STREAM frames, written as it is accepted (PodTunnel.open_now) or with its first use, and
no round trip (the replies are not waited for; kubectl waits for each). How the peer
behaves, and what this side does about it:

- **Flow control.** spdystream neither sends WINDOW_UPDATE nor honours windows, so this side
  never waits for credit (a client that did would stall after 64 KiB) and grants none. What
  bounds memory instead: each stream buffers at most :data:`STREAM_BUFFER` bytes for its
  consumer and the session :data:`SESSION_BUFFER`; above either the session stops reading its
  connection until the consumer catches up (TCP back-pressure; a slow consumer holds back the
  other streams to the same pod, as with kubectl). Writers wait while the carrier holds more
  than its high-water mark.
- **Liveness.** A PING every `ping_interval` seconds; an answer must come within
  :func:`ping_deadline`, else the session is lost. A stream the peer never answers (no
  SYN_REPLY within :data:`REPLY_TIMEOUT`) means a wedged session: lost too.
- **Endings.** A lost session fails every stream on it with one SessionLost. GOAWAY from the
  peer: no new streams (the pool opens another session), open ones go on.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
from collections import deque
from collections.abc import Callable

from portfwd.constants import HEADER_PORT, HEADER_REQUEST_ID, HEADER_STREAM_TYPE
from portfwd.tunnel.carriers import Carrier
from portfwd.tunnel.protocol import SessionLost, TunnelError
from portfwd.wire.spdy import (
    DataPiece,
    FrameEncoder,
    FrameReader,
    GoAwayFrame,
    GoAwayStatus,
    HeadersFrame,
    PingFrame,
    RstStatus,
    RstStreamFrame,
    SpdyProtocolError,
    SynReplyFrame,
    SynStreamFrame,
    data_head,
)

log = logging.getLogger(__name__)

STREAM_BUFFER = 128 * 1024  # bytes one stream holds for its consumer before reading pauses
SESSION_BUFFER = 8 * 1024 * 1024  # the same, for all streams of a session together
DATA_FRAME_MAX = 64 * 1024  # payload of one DATA frame this side sends
REPLY_TIMEOUT = 30.0  # kubectl's createStreamResponseTimeout
STREAM_ID_MAX = 0x7FFFFFFF
# A session that has not shown it is alive (data, a ping's answer) for this long gets a PING
# with a new stream, and one answered within CONFIRM_TIMEOUT: an API server that kept the
# client's WebSocket after its side to a restarted kubelet died answers nothing (or closes
# each new stream with no data), which without this goes unnoticed until the next ping.
QUIET_AFTER = 2.0
CONFIRM_TIMEOUT = 5.0


def ping_deadline(interval: float) -> float:
    """How long a ping may go unanswered: half the interval, at least 1 s, at most the
    interval (a tiny test interval keeps a deadline it can meet)."""
    return min(interval, max(interval / 2, 1.0))


def _pair_headers(stream_type: str, port: int, request_id: str) -> dict[str, list[str]]:
    # spdystream lowercases header names on the wire; the kubelet looks them up either way.
    return {
        HEADER_STREAM_TYPE.lower(): [stream_type],
        HEADER_PORT.lower(): [str(port)],
        HEADER_REQUEST_ID.lower(): [request_id],
    }


def _rst_name(status: int) -> str:
    try:
        return RstStatus(status).name
    except ValueError:
        return str(status)


class SpdyStream:
    """One stream this side opened: bytes each way, each direction with its own FIN."""

    __slots__ = (
        "_buffered",
        "_chunks",
        "_reply_timer",
        "_reserved",
        "_waiter",
        "committed_at",
        "failure",
        "id",
        "local_fin",
        "remote_fin",
        "replied",
        "session",
    )

    def __init__(self, session: SpdySession, stream_id: int) -> None:
        self.session = session
        self.id = stream_id
        self._chunks: deque[bytes] = deque()
        self._buffered = 0
        self.remote_fin = False
        self.local_fin = False
        self.replied = False
        self.failure: TunnelError | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._reply_timer: asyncio.TimerHandle | None = None
        self._reserved = False  # a pair taken by open_pair, not yet committed (data stream)
        self.committed_at = 0.0  # loop time it went on the wire

    @property
    def buffered(self) -> int:
        return self._buffered

    @property
    def done(self) -> bool:
        return self.failure is not None or (self.remote_fin and self.local_fin)

    # -- the consumer's side ------------------------------------------------------------------

    async def receive(self) -> bytes:
        """The next chunk from the peer; b"" after its FIN; raises the stream's failure once
        what arrived before it has been taken."""
        while not self._chunks:
            if self.remote_fin:
                return b""
            if self.failure is not None:
                raise self.failure
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        chunk = self._chunks.popleft()
        self._buffered -= len(chunk)
        self.session._taken(self, len(chunk))
        return chunk

    async def ended(self) -> None:
        """Wait until the peer finished this stream (FIN) or it failed; the bytes stay."""
        while not self.remote_fin and self.failure is None:
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None

    def take_all(self) -> bytes:
        """Everything buffered, at once (the error stream's text)."""
        data = b"".join(self._chunks)
        self._chunks.clear()
        self.session._taken(self, self._buffered)
        self._buffered = 0
        return data

    async def send(self, data: bytes) -> None:
        """Send as DATA frames, waiting while the session's connection is backed up."""
        session = self.session
        size = len(data)
        start = 0
        while start < size:
            while not session.writable:
                await session.drained()
            if self.failure is not None:
                raise self.failure
            if self.local_fin:
                raise TunnelError(f"SPDY stream {self.id} was already closed for sending")
            end = min(size, start + DATA_FRAME_MAX)
            payload = data if start == 0 and end == size else memoryview(data)[start:end]
            session._write(data_head(self.id, end - start) + payload)
            start = end

    def send_eof(self) -> None:
        """FIN: nothing more from this side (the peer may go on sending)."""
        if self.local_fin or self.failure is not None:
            return
        self.local_fin = True
        self.session._write(data_head(self.id, 0, fin=True))
        self.session._forget_if_done(self)

    def reset(self) -> None:
        """The consumer is done with this stream: drop what it holds and, unless it already
        ended both ways, RST_STREAM CANCEL so the kubelet stops sending."""
        session = self.session
        session._taken(self, self._drop())
        if self._reserved:
            session._unreserve(self)
        if not self.done:
            self._fail(TunnelError(f"SPDY stream {self.id} was reset by this side"))
            if session.alive and self.id:  # id 0: never sent, nothing to reset
                with contextlib.suppress(SessionLost):
                    session._write_frame(RstStreamFrame(self.id, RstStatus.CANCEL))
        session._forget(self)

    # -- the session's side ---------------------------------------------------------------------

    def _on_data(self, data: bytes, fin: bool) -> None:
        if self.remote_fin or self.failure is not None:
            return
        if data:
            self._chunks.append(data)
            self._buffered += len(data)
        if fin:
            self.remote_fin = True
        self._wake()

    def _fail(self, error: TunnelError) -> None:
        if self.failure is None:
            self.failure = error
        if self._reply_timer is not None:
            self._reply_timer.cancel()
            self._reply_timer = None
        self._wake()

    def _drop(self) -> int:
        """Forget buffered bytes (nobody will read them); returns how many."""
        dropped = self._buffered
        self._chunks.clear()
        self._buffered = 0
        return dropped

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)


class SpdySession:
    """One SPDY connection to one pod's kubelet (through the API server).

    Create it, `attach` a carrier (whose sink it is), then open stream pairs with
    `open_pair`. `on_lost(session)` is called once when it is lost or closed; `on_idle` each
    time its last open stream ends.
    """

    def __init__(
        self,
        name: str,
        *,
        ping_interval: float = 30.0,
        on_lost: Callable[[SpdySession], None] | None = None,
        on_idle: Callable[[SpdySession], None] | None = None,
    ) -> None:
        self.name = name
        self.ping_interval = ping_interval
        self._on_lost = on_lost
        self._on_idle = on_idle
        self.carrier: Carrier | None = None
        self._encoder = FrameEncoder()
        self._reader = FrameReader()
        self._streams: dict[int, SpdyStream] = {}
        self._next_id = 1
        self._request_ids = itertools.count()
        self.lost_reason: str | None = None
        self.going_away = False
        self._goaway_received = False
        # Pairs handed out by open_pair and not yet on the wire: they count as open streams,
        # so the session is neither closed as idle nor as finished under a connection that
        # is about to use it (the lost-connection race of forwards sharing one pod).
        self._reserved = 0
        self._over: set[SpdyStream] = set()
        self._buffered = 0
        self._reading_paused = False
        self._ping_ids = itertools.count(1, 2)  # a client's pings are odd
        self._ping_outstanding: int | None = None
        self._ping_timer: asyncio.TimerHandle | None = None
        self._ping_deadline_timer: asyncio.TimerHandle | None = None
        self._pings: dict[int, asyncio.Future[float]] = {}
        self._ping_sent: dict[int, float] = {}
        self._confirming: asyncio.Task[None] | None = None
        # Loop time the peer last showed it is alive: DATA with bytes, or a ping's answer
        # (not a SYN_REPLY or a FIN: something in front of a dead kubelet may send those).
        self.heard_at = asyncio.get_running_loop().time()
        self.streams_total = 0
        # The last answered PING of this side: (wall clock, round trip in seconds).
        self.last_ping: tuple[float, float] | None = None

    # -- lifecycle --------------------------------------------------------------------------

    def attach(self, carrier: Carrier) -> None:
        self.carrier = carrier
        self._schedule_ping()

    @property
    def alive(self) -> bool:
        return self.lost_reason is None

    @property
    def usable(self) -> bool:
        """Open for new streams: alive, not told to go away, stream ids left."""
        return self.lost_reason is None and not self.going_away and self._next_id < STREAM_ID_MAX

    @property
    def open_streams(self) -> int:
        """Streams on the wire, and pairs handed out to be committed."""
        return len(self._streams) + self._reserved

    @property
    def local_port(self) -> int:
        """This side's port of the session's connection (for logs and fault tests)."""
        return self.carrier.local_port if self.carrier is not None else 0

    @property
    def writable(self) -> bool:
        carrier = self.carrier
        return carrier is None or carrier.writable or self.lost_reason is not None

    async def drained(self) -> None:
        if self.carrier is not None and self.lost_reason is None:
            await self.carrier.drained()

    def close(self, reason: str = "closed by portfwd") -> None:
        """GOAWAY, then close the connection once what was written is flushed."""
        if self.lost_reason is not None:
            return
        with contextlib.suppress(SessionLost):
            self._write_frame(GoAwayFrame(0, GoAwayStatus.OK))
        self._lose(reason)
        if self.carrier is not None:
            self.carrier.close()

    def finish(self) -> None:
        """Take no new streams; close once the open ones have ended."""
        self.going_away = True
        if not self._streams and not self._reserved:
            self.close("no longer used")

    def abort(self, reason: str = "aborted") -> None:
        self._lose(reason)
        if self.carrier is not None:
            self.carrier.abort()

    async def wait_closed(self) -> None:
        if self.carrier is not None:
            await self.carrier.wait_closed()

    # -- streams ------------------------------------------------------------------------------

    def open_pair(self) -> tuple[SpdyStream, SpdyStream]:
        """(error stream, data stream) for one connection, not on the wire yet: `commit_pair`
        sends them, at accept or with the connection's first use."""
        if not self.usable:
            raise SessionLost(self.lost_reason or f"{self.name} is going away")
        data = SpdyStream(self, 0)
        data._reserved = True
        self._reserved += 1
        return SpdyStream(self, 0), data

    def commit_pair(self, error: SpdyStream, data: SpdyStream, port: int) -> None:
        """Open the pair as kubectl does: the error stream, closed for sending at once, then
        the data stream, for `port`. Nothing waits for the peer: data may follow at once.
        Stream ids are given here, so they reach the peer in increasing order (spdystream
        refuses anything else) however the connections' first bytes interleave."""
        if data.id or data.failure is not None:
            return
        reserved = data._reserved
        if reserved:
            # Taken while the session was usable: it may still go on the wire after this side
            # stopped taking new pairs (finish), not after the peer's GOAWAY or a loss.
            data._reserved = False
            self._reserved -= 1
        if (
            self.lost_reason is not None
            or self._goaway_received
            or self._next_id >= STREAM_ID_MAX
            or (self.going_away and not reserved)
        ):
            lost = SessionLost(self.lost_reason or f"{self.name} is going away")
            if reserved:
                self._maybe_done()
            raise lost
        request_id = str(next(self._request_ids))
        # One write: the carrier sends it at once, the kubelet gets the pair in one piece.
        head = self._syn(error, _pair_headers("error", port, request_id))
        error.local_fin = True  # not written to: closed for sending at once, as kubectl's
        fin = data_head(error.id, 0, fin=True)
        self._write(head + fin + self._syn(data, _pair_headers("data", port, request_id)))
        loop = asyncio.get_running_loop()
        now = data.committed_at = error.committed_at = loop.time()
        data._reply_timer = loop.call_later(REPLY_TIMEOUT, self._reply_overdue, data)
        if now - self.heard_at > QUIET_AFTER:
            self.confirm()

    def _syn(self, stream: SpdyStream, headers: dict[str, list[str]]) -> bytes:
        """Give `stream` its id and its SYN_STREAM, which the caller writes next (encoding
        advances the header compressor: nothing else may be written in between)."""
        stream.id = self._next_id
        self._next_id += 2
        self._streams[stream.id] = stream
        self.streams_total += 1
        return self._encoder.encode(SynStreamFrame(stream.id, headers))

    def _reply_overdue(self, stream: SpdyStream) -> None:
        stream._reply_timer = None
        if not stream.replied and stream.failure is None:
            self.abort(f"the kubelet did not answer a new stream within {REPLY_TIMEOUT:g} s")

    def _forget_if_done(self, stream: SpdyStream) -> None:
        if stream.done:
            self._forget(stream)

    def _forget(self, stream: SpdyStream) -> None:
        if self._streams.get(stream.id) is not stream:
            return
        del self._streams[stream.id]
        if stream._reply_timer is not None:
            stream._reply_timer.cancel()
            stream._reply_timer = None
        self._maybe_done()

    def _unreserve(self, data: SpdyStream) -> None:
        """A pair handed out was given up before it went on the wire."""
        data._reserved = False
        self._reserved -= 1
        self._maybe_done()

    def _maybe_done(self) -> None:
        """No stream left (on the wire or handed out): close if going away, else idle."""
        if self._streams or self._reserved or self.lost_reason is not None:
            return
        if self.going_away:
            self.close("its last stream ended after it stopped taking new ones")
        elif self._on_idle is not None:
            self._on_idle(self)

    # -- writing ------------------------------------------------------------------------------

    def _write(self, data: bytes) -> None:
        if self.lost_reason is not None or self.carrier is None:
            raise SessionLost(self.lost_reason or f"{self.name} is not connected")
        try:
            self.carrier.write(data)
        except ConnectionError as exc:
            self._lose(f"the tunnel connection failed: {exc}")
            raise SessionLost(self.lost_reason or str(exc)) from None

    def _write_frame(
        self, frame: SynStreamFrame | RstStreamFrame | PingFrame | GoAwayFrame
    ) -> None:
        # Encoding advances the header compressor: bytes go out in the order they are made.
        self._write(self._encoder.encode(frame))

    # -- reading (the carrier's sink) ---------------------------------------------------------

    def feed(self, data: bytes | memoryview) -> None:
        if self.lost_reason is not None:
            return
        try:
            items = self._reader.feed(data)
        except SpdyProtocolError as exc:
            with contextlib.suppress(SessionLost):
                self._write_frame(GoAwayFrame(0, GoAwayStatus.PROTOCOL_ERROR))
            self.abort(f"the kubelet broke the SPDY framing: {exc}")
            return
        streams = self._streams
        for item in items:
            if type(item) is DataPiece:
                if item.data:
                    self.heard_at = self._loop_time()
                stream = streams.get(item.stream_id)
                if stream is None:
                    continue  # a stream already reset or forgotten: dropped, as spdystream
                stream._on_data(item.data, item.fin)
                if item.data:
                    self._buffered += len(item.data)
                    if stream._buffered > STREAM_BUFFER:
                        self._over.add(stream)
                if item.fin:
                    self._forget_if_done(stream)
            elif isinstance(item, SynReplyFrame):
                stream = streams.get(item.stream_id)
                if stream is not None:
                    stream.replied = True
                    if stream._reply_timer is not None:
                        stream._reply_timer.cancel()
                        stream._reply_timer = None
                    if item.fin:
                        stream._on_data(b"", True)
                        self._forget_if_done(stream)
            elif isinstance(item, RstStreamFrame):
                stream = streams.get(item.stream_id)
                if stream is not None:
                    stream._fail(
                        TunnelError(f"the kubelet reset the stream ({_rst_name(item.status)})")
                    )
                    self._forget(stream)
            elif isinstance(item, PingFrame):
                self._on_ping(item.ping_id)
            elif isinstance(item, GoAwayFrame):
                self._on_goaway(item.last_good_stream_id)
            elif isinstance(item, HeadersFrame):
                stream = streams.get(item.stream_id)
                if stream is not None and item.fin:
                    stream._on_data(b"", True)
                    self._forget_if_done(stream)
            elif isinstance(item, SynStreamFrame):
                # The kubelet never opens streams towards the client.
                with contextlib.suppress(SessionLost):
                    self._write_frame(RstStreamFrame(item.stream_id, RstStatus.REFUSED_STREAM))
            # SETTINGS, WINDOW_UPDATE: nothing to do (no flow control, see the docstring).
            if self.lost_reason is not None:
                return
        if not self._reading_paused and (self._over or self._buffered > SESSION_BUFFER):
            self._reading_paused = True
            if self.carrier is not None:
                self.carrier.pause_reading()

    def _taken(self, stream: SpdyStream, n: int) -> None:
        """The consumer took `n` bytes of `stream`: maybe read the connection again."""
        self._buffered -= n
        if stream in self._over and stream._buffered <= STREAM_BUFFER // 2:
            self._over.discard(stream)
        if self._reading_paused and not self._over and self._buffered <= SESSION_BUFFER // 2:
            self._reading_paused = False
            if self.carrier is not None and self.lost_reason is None:
                self.carrier.resume_reading()

    def lost(self, reason: str | None) -> None:
        self._lose(reason or "the API server closed the tunnel connection")

    def _lose(self, reason: str) -> None:
        if self.lost_reason is not None:
            return
        self.lost_reason = reason
        for timer in (self._ping_timer, self._ping_deadline_timer):
            if timer is not None:
                timer.cancel()
        self._ping_timer = self._ping_deadline_timer = None
        error = SessionLost(reason)
        streams, self._streams = list(self._streams.values()), {}
        for stream in streams:
            stream._fail(error)
        for waiter in self._pings.values():
            if not waiter.done():
                waiter.set_exception(SessionLost(reason))
        self._pings.clear()
        self._ping_sent.clear()
        self._over.clear()
        confirming = self._confirming
        if (
            confirming is not None
            and not confirming.done()
            and confirming is not asyncio.current_task()
        ):
            confirming.cancel()
        if self._on_lost is not None:
            self._on_lost(self)

    def _on_goaway(self, last_good: int) -> None:
        self.going_away = True
        self._goaway_received = True
        for stream in [s for s in self._streams.values() if s.id > last_good]:
            stream._fail(SessionLost(f"{self.name}: the server is going away (GOAWAY)"))
            self._forget(stream)
        if not self._streams and not self._reserved and self.lost_reason is None:
            self.close("the server asked to go away (GOAWAY)")

    # -- pings --------------------------------------------------------------------------------

    def _schedule_ping(self) -> None:
        if self.ping_interval > 0 and self.lost_reason is None:
            loop = asyncio.get_running_loop()
            self._ping_timer = loop.call_later(self.ping_interval, self._ping_tick)

    def _ping_tick(self) -> None:
        self._ping_timer = None
        if self.lost_reason is not None:
            return
        ping_id = self._send_ping()
        if ping_id is None:
            return
        self._ping_outstanding = ping_id
        loop = asyncio.get_running_loop()
        self._ping_deadline_timer = loop.call_later(
            ping_deadline(self.ping_interval), self._ping_overdue, ping_id
        )
        self._schedule_ping()

    def _ping_overdue(self, ping_id: int) -> None:
        self._ping_deadline_timer = None
        if self._ping_outstanding == ping_id:
            deadline = ping_deadline(self.ping_interval)
            self.abort(f"no answer to a SPDY ping within {deadline:g} s: the tunnel is dead")

    def _send_ping(self) -> int | None:
        ping_id = next(self._ping_ids) & 0xFFFFFFFF
        self._ping_sent[ping_id] = asyncio.get_running_loop().time()
        try:
            self._write_frame(PingFrame(ping_id))
        except SessionLost:
            return None
        return ping_id

    def _on_ping(self, ping_id: int) -> None:
        if ping_id % 2 == 0:  # the server's ping: answer it
            with contextlib.suppress(SessionLost):
                self._write_frame(PingFrame(ping_id))
            return
        self.heard_at = self._loop_time()
        sent = self._ping_sent.pop(ping_id, None)
        if self._ping_outstanding == ping_id:
            self._ping_outstanding = None
            if self._ping_deadline_timer is not None:
                self._ping_deadline_timer.cancel()
                self._ping_deadline_timer = None
        if sent is None:
            return
        rtt = self._loop_time() - sent
        self.last_ping = (time.time(), rtt)
        waiter = self._pings.pop(ping_id, None)
        if waiter is not None and not waiter.done():
            waiter.set_result(rtt)

    @staticmethod
    def _loop_time() -> float:
        return asyncio.get_running_loop().time()

    def heard_since(self, when: float) -> bool:
        """Has the peer shown it is alive since loop time `when`?"""
        return self.heard_at >= when

    def confirm(self) -> asyncio.Task[None]:
        """Make sure the peer is alive: one PING (shared by every caller while it is out),
        answered within CONFIRM_TIMEOUT or the session is lost. The task ends either way;
        `alive` says which."""
        task = self._confirming
        if task is None or task.done():
            within = CONFIRM_TIMEOUT
            if self.ping_interval > 0:
                within = min(within, ping_deadline(self.ping_interval))
            task = self._confirming = asyncio.get_running_loop().create_task(
                self._confirm(within), name=f"{self.name}-confirm"
            )
        return task

    async def _confirm(self, within: float) -> None:
        with contextlib.suppress(SessionLost):
            await self.ping(within)

    async def ping(self, within: float) -> float:
        """Round-trip time of one PING; SessionLost (and the session lost) without an answer
        `within` s."""
        ping_id = self._send_ping()
        if ping_id is None:
            raise SessionLost(self.lost_reason or "the tunnel connection is closed")
        waiter: asyncio.Future[float] = asyncio.get_running_loop().create_future()
        self._pings[ping_id] = waiter
        try:
            async with asyncio.timeout(within):
                return await waiter
        except TimeoutError:
            self.abort(f"no answer to a SPDY ping within {within:g} s: the tunnel is dead")
            raise SessionLost(self.lost_reason or "ping timeout") from None
        finally:
            self._pings.pop(ping_id, None)
            self._ping_sent.pop(ping_id, None)


__all__ = [
    "DATA_FRAME_MAX",
    "SESSION_BUFFER",
    "STREAM_BUFFER",
    "SpdySession",
    "SpdyStream",
    "ping_deadline",
]
