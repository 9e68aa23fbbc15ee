"""The client's SPDY session against a scripted peer: what goes on the wire, flow control as
spdystream does it (none), bounded buffers, pings, GOAWAY, resets, the kubelet's error text."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from portfwd.tunnel import spdy as spdy_mod
from portfwd.tunnel.protocol import SessionLost, TunnelError
from portfwd.tunnel.spdy import SESSION_BUFFER, STREAM_BUFFER, SpdySession
from portfwd.tunnel.spdy_portforward import SpdyPortForward
from portfwd.wire.spdy import (
    DataFrame,
    DataPiece,
    Frame,
    FrameEncoder,
    FrameReader,
    GoAwayFrame,
    PingFrame,
    RstStatus,
    RstStreamFrame,
    SynReplyFrame,
    SynStreamFrame,
    WindowUpdateFrame,
)

TIMEOUT = 5.0


class FakeCarrier:
    """Collects what the session writes; records pauses; can be made to back up."""

    def __init__(self) -> None:
        self.out = bytearray()
        self.writes = 0
        self.wrote = asyncio.Event()  # set by every write
        self.paused = False
        self.pauses = 0
        self.closed = False
        self.aborted = False
        self._writable = asyncio.Event()
        self._writable.set()
        self.waiting = asyncio.Event()
        self._closed = asyncio.Event()

    def write(self, data: bytes) -> None:
        if self.closed or self.aborted:
            raise ConnectionResetError("closed")
        self.out += data
        self.writes += 1
        self.wrote.set()

    @property
    def buffered(self) -> int:
        return len(self.out)

    local_port = 0

    @property
    def writable(self) -> bool:
        return self._writable.is_set()

    async def drained(self) -> None:
        self.waiting.set()  # a writer waits for the connection to drain
        await self._writable.wait()

    def back_up(self, on: bool) -> None:
        if on:
            self._writable.clear()
        else:
            self._writable.set()

    def pause_reading(self) -> None:
        self.paused = True
        self.pauses += 1

    def resume_reading(self) -> None:
        self.paused = False

    def close(self) -> None:
        self.closed = True
        self._closed.set()

    def abort(self) -> None:
        self.aborted = True
        self._closed.set()

    async def wait_closed(self) -> None:
        await self._closed.wait()


class Peer:
    """The kubelet's end: decodes what the session wrote, encodes what it sends back."""

    def __init__(self, session: SpdySession, carrier: FakeCarrier) -> None:
        self.session = session
        self.carrier = carrier
        self.reader = FrameReader()
        self.encoder = FrameEncoder()
        self.seen = 0

    def frames(self) -> list[Frame | DataPiece]:
        """What the session wrote since the last call."""
        data = bytes(self.carrier.out[self.seen :])
        self.seen = len(self.carrier.out)
        return self.reader.feed(data)

    def send(self, *frames: Frame) -> None:
        self.session.feed(b"".join(self.encoder.encode(f) for f in frames))

    async def pings(self) -> list[PingFrame]:
        """The next PINGs the session writes (waiting for writes, not polling)."""
        async with asyncio.timeout(TIMEOUT):
            while True:
                found = [f for f in self.frames() if isinstance(f, PingFrame)]
                if found:
                    return found
                self.carrier.wrote.clear()
                await self.carrier.wrote.wait()


@pytest_asyncio.fixture
async def peer() -> AsyncIterator[Peer]:
    lost: list[SpdySession] = []
    session = SpdySession("test", ping_interval=0, on_lost=lost.append)
    carrier = FakeCarrier()
    session.attach(carrier)
    yield Peer(session, carrier)
    session.abort("test over")


def _pair(peer: Peer, port: int = 9000) -> SpdyPortForward:
    error, data = peer.session.open_pair()
    return SpdyPortForward(peer.session, error, data, port)


async def test_a_connection_opens_two_streams_as_kubectl_does_with_its_first_bytes(
    peer: Peer,
) -> None:
    first, second = _pair(peer), _pair(peer)
    assert peer.frames() == []  # nothing on the wire before the connection is used
    await first.send(b"hello")
    await second.send(b"bye")
    headers = [
        {"streamtype": ["error"], "port": ["9000"], "requestid": ["0"]},
        {"streamtype": ["data"], "port": ["9000"], "requestid": ["0"]},
        {"streamtype": ["error"], "port": ["9000"], "requestid": ["1"]},
        {"streamtype": ["data"], "port": ["9000"], "requestid": ["1"]},
    ]
    assert peer.frames() == [
        SynStreamFrame(1, headers[0]),
        DataPiece(1, b"", True),  # the error stream is closed for sending at once
        SynStreamFrame(3, headers[1]),
        DataPiece(3, b"hello"),
        SynStreamFrame(5, headers[2]),
        DataPiece(5, b"", True),
        SynStreamFrame(7, headers[3]),
        DataPiece(7, b"bye"),
    ]


async def test_a_pair_goes_on_the_wire_in_one_write(peer: Peer) -> None:
    """The carrier sends a write at once when it is the first of its loop turn: the kubelet
    gets the whole pair together, not the error stream a turn before the data stream."""
    pair = _pair(peer)
    pair.commit()
    assert peer.carrier.writes == 1
    assert [type(f) for f in peer.frames()] == [SynStreamFrame, DataPiece, SynStreamFrame]


async def test_stream_ids_increase_in_the_order_connections_first_send(peer: Peer) -> None:
    early, late = _pair(peer), _pair(peer)
    await late.send(b"x")  # the later connection speaks first: it gets the lower ids
    await early.send(b"y")
    syns = [f for f in peer.frames() if isinstance(f, SynStreamFrame)]
    assert [f.stream_id for f in syns] == [1, 3, 5, 7]
    assert syns[1].headers["requestid"] == ["0"] and syns[3].headers["requestid"] == ["1"]


async def test_no_window_update_is_awaited_or_sent(peer: Peer) -> None:
    """spdystream never sends WINDOW_UPDATE: a client waiting for credit would stall after
    64 KiB. Both directions move far more than a window without any."""
    pf = _pair(peer)
    payload = os.urandom(1024 * 1024)
    await asyncio.wait_for(pf.send(payload), TIMEOUT)
    sent = b"".join(f.data for f in peer.frames() if isinstance(f, DataPiece) and f.stream_id == 3)
    assert sent == payload
    incoming = os.urandom(200 * 1024)
    for off in range(0, len(incoming), 32 * 1024):
        peer.send(DataFrame(3, incoming[off : off + 32 * 1024]))
    got = bytearray()
    while len(got) < len(incoming):
        got += await asyncio.wait_for(pf.receive(), TIMEOUT)
    assert bytes(got) == incoming
    assert not any(isinstance(f, WindowUpdateFrame) for f in peer.frames())


async def test_a_slow_consumer_stops_reading_with_bounded_buffers_then_resumes(
    peer: Peer,
) -> None:
    pf = _pair(peer)
    await pf.send(b"go")
    chunk = os.urandom(32 * 1024)
    for _ in range(STREAM_BUFFER // len(chunk) + 2):
        peer.send(DataFrame(3, chunk))
    assert peer.carrier.paused  # the session asked its connection to stop reading
    got = 0
    while peer.carrier.paused:
        got += len(await asyncio.wait_for(pf.receive(), TIMEOUT))
    assert got <= STREAM_BUFFER  # it read again once the consumer caught up
    assert not peer.carrier.paused


async def test_many_streams_together_are_bounded_too(peer: Peer) -> None:
    pairs = [_pair(peer) for _ in range(SESSION_BUFFER // STREAM_BUFFER * 3 // 2)]
    for pf in pairs:
        await pf.send(b"go")
    chunk = os.urandom(64 * 1024)
    per_stream = STREAM_BUFFER // len(chunk)  # each stays at its own limit
    fed = 0
    for _ in range(per_stream):
        for i in range(len(pairs)):
            peer.send(DataFrame(3 + 4 * i, chunk))
            fed += len(chunk)
            if peer.carrier.paused:
                break
        if peer.carrier.paused:
            break
    assert peer.carrier.paused
    assert SESSION_BUFFER < fed < len(pairs) * STREAM_BUFFER  # the total hit its cap first


async def test_a_reset_from_the_kubelet_fails_only_its_stream(peer: Peer) -> None:
    one, two = _pair(peer), _pair(peer)
    await one.send(b"a")
    await two.send(b"b")
    peer.send(RstStreamFrame(3, RstStatus.CANCEL), DataFrame(7, b"fine"))
    with pytest.raises(TunnelError, match=r"reset the stream \(CANCEL\)"):
        await asyncio.wait_for(one.receive(), TIMEOUT)
    assert await asyncio.wait_for(two.receive(), TIMEOUT) == b"fine"
    assert peer.session.alive


async def test_the_kubelets_error_text_is_the_failure_of_the_connection(peer: Peer) -> None:
    pf = _pair(peer)
    await pf.send(b"hello")
    text = (
        "error forwarding port 5432 to pod db-0, uid : failed to connect to localhost:5432 inside"
        ' namespace of pod "db-0": dial tcp 127.0.0.1:5432: connect: connection refused'
    )
    peer.send(
        SynReplyFrame(1, {}),
        SynReplyFrame(3, {}),
        DataFrame(1, text.encode()),
        DataFrame(1, b"", fin=True),
        DataFrame(3, b"", fin=True),
    )
    with pytest.raises(TunnelError) as info:
        await asyncio.wait_for(pf.receive(), TIMEOUT)
    assert str(info.value) == text
    assert not isinstance(info.value, SessionLost)
    pf.abort()  # the pump's end: the data stream (FIN from the pod only) is reset
    assert peer.session.alive and peer.session.open_streams == 0
    assert peer.frames()[-1] == RstStreamFrame(3, RstStatus.CANCEL)


async def test_half_close_sends_fin_and_the_reply_still_comes(peer: Peer) -> None:
    pf = _pair(peer)
    await pf.send(b"request")
    await pf.send_eof()
    assert peer.frames()[-1] == DataPiece(3, b"", True)
    peer.send(DataFrame(3, b"reply"), DataFrame(3, b"", fin=True))
    assert await asyncio.wait_for(pf.receive(), TIMEOUT) == b"reply"
    assert await asyncio.wait_for(pf.receive(), TIMEOUT) == b""


async def test_abort_resets_what_has_not_ended(peer: Peer) -> None:
    pf = _pair(peer)
    await pf.send(b"x")
    peer.frames()
    pf.abort()
    assert peer.frames() == [
        RstStreamFrame(3, RstStatus.CANCEL),
        RstStreamFrame(1, RstStatus.CANCEL),
    ]
    unused = _pair(peer)
    unused.abort()  # never sent: nothing to reset
    assert peer.frames() == []


async def test_goaway_ends_new_streams_and_lets_older_ones_finish(peer: Peer) -> None:
    old, new = _pair(peer), _pair(peer)
    await old.send(b"a")
    await new.send(b"b")
    peer.send(GoAwayFrame(3))
    with pytest.raises(SessionLost, match="going away"):
        await asyncio.wait_for(new.receive(), TIMEOUT)
    assert not peer.session.usable
    with pytest.raises(SessionLost):
        peer.session.open_pair()
    peer.send(DataFrame(3, b"done"), DataFrame(3, b"", fin=True), DataFrame(1, b"", fin=True))
    assert await asyncio.wait_for(old.receive(), TIMEOUT) == b"done"
    assert await asyncio.wait_for(old.receive(), TIMEOUT) == b""
    await old.send_eof()
    old.abort()
    assert peer.carrier.closed  # its last stream ended: the session closed itself


async def test_server_pings_are_answered(peer: Peer) -> None:
    peer.frames()
    peer.send(PingFrame(2))
    assert peer.frames() == [PingFrame(2)]


async def test_a_ping_answered_in_time_keeps_the_session_and_a_lost_one_ends_it() -> None:
    lost: list[SpdySession] = []
    session = SpdySession("pings", ping_interval=0.05, on_lost=lost.append)
    carrier = FakeCarrier()
    session.attach(carrier)
    peer = Peer(session, carrier)
    pf = _pair(peer)
    await pf.send(b"x")
    for _ in range(3):  # answer three pings
        peer.send(*await peer.pings())
    assert session.alive
    await asyncio.wait_for(carrier.wait_closed(), TIMEOUT)  # then stop answering
    assert not session.alive and lost == [session]
    assert "no answer to a SPDY ping" in (session.lost_reason or "")
    with pytest.raises(SessionLost, match="no answer to a SPDY ping"):
        await pf.receive()
    assert carrier.aborted


async def test_an_explicit_ping_measures_or_fails(peer: Peer) -> None:
    async def answer() -> None:
        peer.send(*await peer.pings())

    answering = asyncio.create_task(answer())
    rtt = await peer.session.ping(TIMEOUT)
    await answering
    assert rtt >= 0
    with pytest.raises(SessionLost):
        await peer.session.ping(0.05)
    assert not peer.session.alive


async def test_a_stream_the_kubelet_never_answers_ends_the_session(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(spdy_mod, "REPLY_TIMEOUT", 0.05)
    session = SpdySession("wedged", ping_interval=0)
    carrier = FakeCarrier()
    session.attach(carrier)
    pf = SpdyPortForward(session, *session.open_pair(), 9000)
    with pytest.raises(SessionLost, match="did not answer a new stream"):
        await asyncio.wait_for(pf.receive(), TIMEOUT)
    assert carrier.aborted


async def test_broken_framing_ends_the_session_with_goaway(peer: Peer) -> None:
    pf = _pair(peer)
    await pf.send(b"x")
    peer.frames()
    peer.session.feed(b"\x00\x00\x00\x00\x00\x00\x00\x01z")  # DATA on stream 0
    assert not peer.session.alive
    assert "broke the SPDY framing" in (peer.session.lost_reason or "")
    assert GoAwayFrame(0, 1) in peer.frames()
    with pytest.raises(SessionLost):
        await pf.receive()


async def test_writers_wait_while_the_connection_is_backed_up(peer: Peer) -> None:
    pf = _pair(peer)
    peer.carrier.back_up(True)
    sending = asyncio.create_task(pf.send(b"y" * 1000))
    await asyncio.wait_for(peer.carrier.waiting.wait(), TIMEOUT)  # it waits...
    assert not sending.done()
    assert not any(isinstance(f, DataPiece) and f.data for f in peer.frames())  # ...no data
    peer.carrier.back_up(False)
    await asyncio.wait_for(sending, TIMEOUT)


async def test_a_lost_connection_fails_every_stream_once(peer: Peer) -> None:
    pairs = [_pair(peer) for _ in range(5)]
    for pf in pairs:
        await pf.send(b"x")
    peer.session.lost("connection reset by peer")
    for pf in pairs:
        with pytest.raises(SessionLost, match="connection reset by peer"):
            await asyncio.wait_for(pf.receive(), TIMEOUT)
        with pytest.raises(SessionLost):
            await pf.send(b"more")


async def test_a_pair_handed_out_survives_finish_and_counts_as_open(peer: Peer) -> None:
    """The shared-pod race: a connection took a pair, and before its first bytes another
    forward retired the session (`finish`). The pair still goes on the wire; the session
    closes once that connection is over, not under it."""
    idle: list[SpdySession] = []
    peer.session._on_idle = idle.append
    pf = _pair(peer)
    assert peer.session.open_streams == 1  # handed out: not idle
    peer.session.finish()
    assert not peer.carrier.closed and not peer.session.usable
    with pytest.raises(SessionLost):
        peer.session.open_pair()  # no new pairs once finishing
    await pf.send(b"hello")
    assert [f for f in peer.frames() if isinstance(f, DataPiece) and f.data] == [
        DataPiece(3, b"hello")
    ]
    peer.send(
        SynReplyFrame(1, {}),
        SynReplyFrame(3, {}),
        DataFrame(3, b"hello"),
        DataFrame(3, b"", fin=True),
    )
    assert await asyncio.wait_for(pf.receive(), TIMEOUT) == b"hello"
    await pf.send_eof()
    peer.send(DataFrame(1, b"", fin=True))
    assert await asyncio.wait_for(pf.receive(), TIMEOUT) == b""
    pf.abort()
    assert peer.carrier.closed and idle == []  # closed after its last stream, not idle


async def test_a_pair_given_up_before_use_releases_the_session(peer: Peer) -> None:
    idle: list[SpdySession] = []
    peer.session._on_idle = idle.append
    pf = _pair(peer)
    pf.abort()  # the client went away before sending anything
    assert peer.session.open_streams == 0 and idle == [peer.session]
    finishing = _pair(peer)
    peer.session.finish()
    finishing.abort()
    assert peer.carrier.closed
    assert not any(isinstance(f, SynStreamFrame | RstStreamFrame) for f in peer.frames())


async def test_a_pair_handed_out_before_goaway_is_not_sent_after_it(peer: Peer) -> None:
    pf = _pair(peer)
    peer.send(GoAwayFrame(0))
    with pytest.raises(SessionLost, match="going away"):
        await pf.send(b"late")
    assert not any(isinstance(f, SynStreamFrame) for f in peer.frames())
    assert peer.carrier.closed
