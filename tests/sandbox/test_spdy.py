"""The sandbox's SPDY session and its kubelet-side SPDY port-forward on a small test app."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator, Awaitable, Callable

import aiohttp
import pytest
import pytest_asyncio
from aiohttp import web

from portfwd.sandbox.portforward_spdy import SPDY_TUNNEL_PROTOCOL, serve_portforward_spdy
from portfwd.sandbox.spdy import STREAM_BUFFER, SpdySession, SpdyStream
from portfwd.wire.spdy import (
    DEFAULT_WINDOW,
    DataFrame,
    Frame,
    FrameDecoder,
    FrameEncoder,
    GoAwayFrame,
    PingFrame,
    RstStatus,
    RstStreamFrame,
    SettingsFrame,
    SynReplyFrame,
    SynStreamFrame,
)

TIMEOUT = 10.0

# --- session ----------------------------------------------------------------------------------


class Peer:
    """The client end of a session under test: feeds frames in, collects frames out."""

    def __init__(
        self,
        validate: Callable[[SpdyStream], str | None] | None = None,
    ) -> None:
        self.source = asyncio.StreamReader()
        self.encoder = FrameEncoder()
        self.decoder = FrameDecoder()
        self.received: asyncio.Queue[Frame] = asyncio.Queue()
        self.streams: asyncio.Queue[SpdyStream] = asyncio.Queue()
        self.session = SpdySession(
            self.source,
            self._receive,
            validate=validate or (lambda s: None),
            on_stream=self.streams.put_nowait,
        )

    async def _receive(self, data: bytes) -> None:
        for frame in self.decoder.feed(data):
            self.received.put_nowait(frame)

    def send(self, *frames: Frame) -> None:
        for frame in frames:
            self.source.feed_data(self.encoder.encode(frame))

    async def next(self) -> Frame:
        return await asyncio.wait_for(self.received.get(), TIMEOUT)

    async def next_stream(self) -> SpdyStream:
        return await asyncio.wait_for(self.streams.get(), TIMEOUT)


@contextlib.asynccontextmanager
async def running(peer: Peer) -> AsyncIterator[asyncio.Task[None]]:
    task = asyncio.create_task(peer.session.run())
    try:
        yield task
    finally:
        peer.source.feed_eof()
        await asyncio.wait_for(task, TIMEOUT)


async def test_session_accepts_refuses_and_answers_pings() -> None:
    peer = Peer(validate=lambda s: None if s.header("port") else "no port")
    async with running(peer):
        peer.send(SynStreamFrame(1, {"port": ["80"]}))
        assert await peer.next() == SynReplyFrame(1, {})
        stream = await peer.next_stream()
        assert stream.stream_id == 1 and stream.header("Port") == "80"

        peer.send(SynStreamFrame(3, {}))
        assert await peer.next() == RstStreamFrame(3, RstStatus.CANCEL)
        peer.send(SynStreamFrame(2, {"port": ["80"]}))  # even: server-side ids
        assert await peer.next() == RstStreamFrame(2, RstStatus.PROTOCOL_ERROR)
        peer.send(SynStreamFrame(1, {"port": ["80"]}))  # not increasing
        assert await peer.next() == RstStreamFrame(1, RstStatus.PROTOCOL_ERROR)

        peer.send(PingFrame(7))
        assert await peer.next() == PingFrame(7)
        assert peer.streams.empty()


async def test_no_new_streams_after_goaway() -> None:
    peer = Peer()
    async with running(peer):
        peer.send(GoAwayFrame(0), SynStreamFrame(1, {}), PingFrame(9))
        assert await peer.next() == PingFrame(9)  # the session still answers...
        assert peer.streams.empty()  # ...but took no stream after GOAWAY


async def test_stream_data_fin_and_half_close() -> None:
    peer = Peer()
    async with running(peer):
        peer.send(SynStreamFrame(1, {}), DataFrame(1, b"abc"), DataFrame(1, b"def", fin=True))
        assert await peer.next() == SynReplyFrame(1, {})
        stream = await peer.next_stream()
        assert await stream.read() == b"abc"
        assert await stream.read() == b"def"
        assert await stream.read() == b""
        # Our direction is still open after the peer's FIN.
        await stream.write(b"reply")
        await stream.close()
        assert await peer.next() == DataFrame(1, b"reply")
        assert await peer.next() == DataFrame(1, b"", fin=True)
        assert 1 not in peer.session.streams  # both sides done: forgotten
        with pytest.raises(ConnectionResetError):
            await stream.write(b"late")


async def test_reset_and_session_end_wake_readers() -> None:
    peer = Peer()
    async with running(peer) as task:
        peer.send(SynStreamFrame(1, {}), SynStreamFrame(3, {}))
        first, second = await peer.next_stream(), await peer.next_stream()
        reading = asyncio.create_task(first.read())
        peer.send(RstStreamFrame(1, RstStatus.CANCEL))
        assert await asyncio.wait_for(reading, TIMEOUT) == b""
        assert first.reset
        peer.source.feed_eof()
        await asyncio.wait_for(task, TIMEOUT)
        assert await second.read() == b""
        with pytest.raises(ConnectionResetError):
            await second.write(b"x")


async def test_windows_are_neither_kept_nor_granted_as_in_spdystream() -> None:
    """The real kubelet (spdystream) never sends WINDOW_UPDATE and ignores the peer's windows:
    the sandbox must do the same, so clients are tested against what they will meet."""
    peer = Peer()
    async with running(peer):
        peer.send(SettingsFrame(((0, 7, 1000),)), SynStreamFrame(1, {}))
        stream = await peer.next_stream()
        assert await peer.next() == SynReplyFrame(1, {})
        # A window of 1000 announced, 2 windows' worth sent anyway, at once.
        await asyncio.wait_for(stream.write(b"x" * (DEFAULT_WINDOW * 2)), TIMEOUT)
        got = 0
        while got < DEFAULT_WINDOW * 2:
            frame = await peer.next()
            assert isinstance(frame, DataFrame)
            got += len(frame.data)
        # Data taken by the consumer is never credited back.
        for _ in range(8):
            peer.send(DataFrame(1, b"z" * 16384))
        for _ in range(8):
            assert len(await stream.read()) == 16384
        peer.send(PingFrame(11))
        assert await peer.next() == PingFrame(11)  # the next frame out: no WINDOW_UPDATE


async def test_a_lagging_stream_stops_the_reader_with_bounded_memory() -> None:
    peer = Peer()
    async with running(peer):
        peer.send(SynStreamFrame(1, {}))
        stream = await peer.next_stream()
        chunk = b"q" * 32768
        total = STREAM_BUFFER * 4
        for _ in range(total // len(chunk)):
            peer.send(DataFrame(1, chunk))
        await asyncio.sleep(0.1)  # let the reader run as far as it can
        assert stream._buffered <= STREAM_BUFFER
        unread = len(peer.source._buffer)  # type: ignore[attr-defined]
        assert unread > 0  # the rest waits unread (TCP back-pressure)
        got = 0
        while got < total:
            got += len(await asyncio.wait_for(stream.read(), TIMEOUT))
        assert got == total


async def test_released_stream_drops_data_without_stalling() -> None:
    peer = Peer()
    async with running(peer):
        peer.send(SynStreamFrame(1, {}), SynStreamFrame(3, {}))
        dropped, other = await peer.next_stream(), await peer.next_stream()
        dropped.release()
        for _ in range(STREAM_BUFFER // 32768 + 4):
            peer.send(DataFrame(1, b"w" * 32768))
        peer.send(DataFrame(3, b"still flowing"))
        assert await asyncio.wait_for(other.read(), TIMEOUT) == b"still flowing"


# --- the kubelet side on a small app -----------------------------------------------------------


async def _echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while data := await reader.read(65536):
        writer.write(data)
        await writer.drain()
    writer.write_eof()
    writer.close()


async def _blob(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    writer.write(bytes(range(256)) * 40)  # 10240 bytes, then close
    await writer.drain()
    writer.close()


SILENT_CLOSED: asyncio.Queue[bytes] = asyncio.Queue()


async def _silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Never answers; reports what it read once the connection ends."""
    SILENT_CLOSED.put_nowait(await reader.read())
    writer.close()


@pytest_asyncio.fixture
async def app_url() -> AsyncIterator[str]:
    """The SPDY port-forward of pod "web": 9000 echo, 9001 a blob, 9002 silent, else refused."""
    servers = {
        9000: await asyncio.start_server(_echo, "127.0.0.1", 0),
        9001: await asyncio.start_server(_blob, "127.0.0.1", 0),
        9002: await asyncio.start_server(_silent, "127.0.0.1", 0),
    }

    async def dial(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        server = servers.get(port)
        if server is None:
            raise ConnectionRefusedError("connect: connection refused")
        return await asyncio.open_connection(*server.sockets[0].getsockname()[:2])

    async def handler(request: web.Request) -> web.StreamResponse:
        return await serve_portforward_spdy(
            request,
            pod_name="web",
            pod_uid="uid-1",
            dial=dial,
            close_linger=0.5,
            stream_creation_timeout=0.3,
        )

    app = web.Application()
    app.router.add_route("*", "/pf", handler)
    runner = web.AppRunner(app, shutdown_timeout=1.0)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        port = runner.addresses[0][1]
        yield f"127.0.0.1:{port}"
    finally:
        await asyncio.wait_for(runner.cleanup(), TIMEOUT)
        for server in servers.values():
            server.close()
            await server.wait_closed()


class Client:
    """A minimal SPDY port-forward client over any byte transport."""

    def __init__(
        self, write: Callable[[bytes], Awaitable[None]], read: Callable[[], Awaitable[bytes]]
    ) -> None:
        self._write, self._read = write, read
        self.encoder, self.decoder = FrameEncoder(), FrameDecoder()
        self.pending: list[Frame] = []
        self.next_id = 1

    async def send(self, *frames: Frame) -> None:
        await self._write(b"".join(self.encoder.encode(f) for f in frames))

    async def frame(self) -> Frame:
        while not self.pending:
            data = await asyncio.wait_for(self._read(), TIMEOUT)
            if not data:
                raise EOFError
            self.pending += self.decoder.feed(data)
        return self.pending.pop(0)

    async def open_pair(self, port: int | str, request_id: str) -> tuple[int, int]:
        error_id, data_id = self.next_id, self.next_id + 2
        self.next_id += 4
        base = {"port": [str(port)], "requestid": [request_id]}
        await self.send(
            SynStreamFrame(error_id, {**base, "streamtype": ["error"]}),
            DataFrame(error_id, b"", fin=True),  # kubectl never writes to the error stream
            SynStreamFrame(data_id, {**base, "streamtype": ["data"]}),
        )
        return error_id, data_id

    async def collect(self, *stream_ids: int) -> dict[int, bytes]:
        """Frames until every given stream sent FIN (or was reset); data per stream."""
        data = {sid: b"" for sid in stream_ids}
        open_ids = set(stream_ids)
        while open_ids:
            frame = await self.frame()
            if isinstance(frame, DataFrame) and frame.stream_id in data:
                data[frame.stream_id] += frame.data
                if frame.fin:
                    open_ids.discard(frame.stream_id)
            elif isinstance(frame, RstStreamFrame):
                open_ids.discard(frame.stream_id)
        return data


@contextlib.asynccontextmanager
async def plain_client(app_url: str) -> AsyncIterator[Client]:
    host, port = app_url.split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        writer.write(
            b"POST /pf HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: SPDY/3.1\r\n"
            b"X-Stream-Protocol-Version: portforward.k8s.io\r\nContent-Length: 0\r\n\r\n"
        )
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), TIMEOUT)
        lines = head.decode().split("\r\n")
        assert lines[0] == "HTTP/1.1 101 Switching Protocols"
        headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
        assert headers["upgrade"] == "SPDY/3.1"
        assert headers["connection"].lower() == "upgrade"
        assert headers["x-stream-protocol-version"] == "portforward.k8s.io"

        async def write(data: bytes) -> None:
            writer.write(data)
            await writer.drain()

        yield Client(write, lambda: reader.read(65536))
    finally:
        writer.close()


async def test_plain_upgrade_forwards_with_half_close(app_url: str) -> None:
    payload = os.urandom(200_000)
    async with plain_client(app_url) as client:
        error_id, data_id = await client.open_pair(9000, "0")
        await client.send(DataFrame(data_id, payload), DataFrame(data_id, b"", fin=True))
        got = await client.collect(error_id, data_id)
        assert got == {error_id: b"", data_id: payload}
        # The session carries on: a second pair on the same connection.
        error_id, data_id = await client.open_pair(9000, "1")
        await client.send(DataFrame(data_id, b"ping", fin=True))
        assert (await client.collect(error_id, data_id))[data_id] == b"ping"


async def test_client_reset_drops_an_idle_pod_connection(app_url: str) -> None:
    async with plain_client(app_url) as client:
        error_id, data_id = await client.open_pair(9002, "0")
        await client.send(RstStreamFrame(data_id, RstStatus.CANCEL))
        # The pod saw its connection end, and the forward ended (FIN on the error stream).
        assert await asyncio.wait_for(SILENT_CLOSED.get(), TIMEOUT) == b""
        assert (await client.collect(error_id))[error_id] == b""


async def test_streams_without_request_ids_pair_by_stream_id(app_url: str) -> None:
    """Old clients send no requestID: error stream N pairs with data stream N+2."""
    async with plain_client(app_url) as client:
        await client.send(
            SynStreamFrame(1, {"port": ["9000"], "streamtype": ["error"]}),
            SynStreamFrame(3, {"port": ["9000"], "streamtype": ["data"]}),
            DataFrame(3, b"old client", fin=True),
        )
        assert (await client.collect(1, 3))[3] == b"old client"


async def test_refused_dial_writes_the_kubelet_text(app_url: str) -> None:
    async with plain_client(app_url) as client:
        error_id, data_id = await client.open_pair(9999, "0")
        got = await client.collect(error_id, data_id)
    assert got[error_id].decode() == (
        "error forwarding port 9999 to pod web, uid uid-1: failed to connect to localhost:9999 "
        'inside namespace of pod "web": dial tcp 127.0.0.1:9999: connect: connection refused'
    )
    assert got[data_id] == b""


async def test_bad_stream_headers_are_reset(app_url: str) -> None:
    async with plain_client(app_url) as client:
        await client.send(SynStreamFrame(1, {"port": ["abc"], "streamtype": ["data"]}))
        assert await client.frame() == RstStreamFrame(1, RstStatus.CANCEL)
        await client.send(SynStreamFrame(3, {"port": ["80"], "streamtype": ["stdin"]}))
        assert await client.frame() == RstStreamFrame(3, RstStatus.CANCEL)
        await client.send(SynStreamFrame(5, {"streamtype": ["data"]}))
        assert await client.frame() == RstStreamFrame(5, RstStatus.CANCEL)


async def test_incomplete_pair_times_out_on_the_error_stream(app_url: str) -> None:
    async with plain_client(app_url) as client:
        await client.send(
            SynStreamFrame(1, {"port": ["9000"], "requestid": ["7"], "streamtype": ["error"]})
        )
        assert await client.frame() == SynReplyFrame(1, {})
        frame = await client.frame()
    assert isinstance(frame, DataFrame) and frame.stream_id == 1
    assert frame.data.decode().endswith(", request=7) timed out waiting for streams")


async def test_pod_data_ignores_the_clients_window(app_url: str) -> None:
    async with plain_client(app_url) as client:
        await client.send(SettingsFrame(((0, 7, 4096),)))
        error_id, data_id = await client.open_pair(9001, "0")
        got = await client.collect(error_id, data_id)
    assert len(got[data_id]) == 10240  # all of it, with no WINDOW_UPDATE from the client


async def test_handshake_errors_as_the_kubelet_words_them(app_url: str) -> None:
    async with aiohttp.ClientSession() as http:
        upgrade = {"Connection": "Upgrade", "Upgrade": "SPDY/3.1"}
        async with http.post(f"http://{app_url}/pf", headers=upgrade) as resp:
            assert resp.status == 400
            # aiohttp's Accept, Accept-Encoding, User-Agent, Content-Length, Content-Type,
            # these two, and the X-Forwarded-For an API server's proxy adds.
            assert await resp.text() == (
                "unable to upgrade: header X-Stream-Protocol-Version does not exist in request "
                "with 8 headers\n"
            )
        wrong = {**upgrade, "X-Stream-Protocol-Version": "channel.k8s.io"}
        async with http.post(f"http://{app_url}/pf", headers=wrong) as resp:
            assert resp.status == 403
            assert resp.headers["X-Accepted-Stream-Protocol-Versions"] == "portforward.k8s.io"
            assert await resp.text() == (
                "unable to upgrade: unable to negotiate protocol: client supports "
                "[channel.k8s.io], server accepts [portforward.k8s.io]\n"
            )


async def test_websocket_tunnel_carries_the_same_session(app_url: str) -> None:
    async with (
        aiohttp.ClientSession() as http,
        http.ws_connect(f"http://{app_url}/pf", protocols=[SPDY_TUNNEL_PROTOCOL]) as ws,
    ):
        assert ws.protocol == SPDY_TUNNEL_PROTOCOL

        async def read() -> bytes:
            msg = await ws.receive()
            return msg.data if msg.type is aiohttp.WSMsgType.BINARY else b""

        client = Client(ws.send_bytes, read)
        payload = os.urandom(150_000)
        error_id, data_id = await client.open_pair(9000, "0")
        # Split frames across messages at odd places, as Go's framer does.
        wire = client.encoder.encode(DataFrame(data_id, payload))
        wire += client.encoder.encode(DataFrame(data_id, b"", fin=True))
        for i in range(0, len(wire), 7777):
            await ws.send_bytes(wire[i : i + 7777])
        got = await client.collect(error_id, data_id)
    assert got == {error_id: b"", data_id: payload}
