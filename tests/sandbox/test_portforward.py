"""The sandbox's kubelet-side port-forward, checked against what a real cluster answers.

A tiny aiohttp app mounts `serve_portforward` on the real path with a real BackendPool, so
these tests do not depend on the rest of the sandbox. Expected bytes and texts come from
docs/protocols.md, section 4 (measured on a v1.36 API server + kubelet streaming code).
"""

from __future__ import annotations

import asyncio
import json
import socket
import struct
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

import aiohttp
import pytest
import pytest_asyncio
from aiohttp import WSMsgType, web

from portfwd.sandbox.backends import BackendPool, bytes_body
from portfwd.sandbox.portforward import serve_portforward

POD = "web"
UID = "1b2c3d4e-0000-4000-8000-000000000001"
PF_PATH = f"/api/v1/namespaces/default/pods/{POD}/portforward"
STEP = 10.0  # generous bound for any single wait; never a performance threshold


@dataclass
class Harness:
    url: str
    session: aiohttp.ClientSession
    pool: BackendPool
    # container port -> backend address; ports not listed refuse like a closed port.
    routes: dict[int, tuple[str, int]] = field(default_factory=dict)
    dialled: list[asyncio.StreamWriter] = field(default_factory=list)

    def pf_url(self, query: str) -> str:
        return f"{self.url}{PF_PATH}?{query}"

    async def connect(
        self, query: str, protocols: tuple[str, ...] = ("v4.channel.k8s.io",)
    ) -> aiohttp.ClientWebSocketResponse:
        return await self.session.ws_connect(
            self.pf_url(query),
            protocols=protocols,
            autoclose=False,
            timeout=aiohttp.ClientWSTimeout(ws_close=STEP),
        )


@pytest_asyncio.fixture
async def harness() -> AsyncIterator[Harness]:
    pool = BackendPool()
    state: dict[str, Harness] = {}

    async def dial(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        h = state["h"]
        address = h.routes.get(port)
        if address is None:
            raise ConnectionRefusedError("connect: connection refused")
        reader, writer = await asyncio.open_connection(*address)
        h.dialled.append(writer)
        return reader, writer

    async def handler(request: web.Request) -> web.StreamResponse:
        return await serve_portforward(
            request, pod_name=request.match_info["pod"], pod_uid=UID, dial=dial, close_linger=0.2
        )

    app = web.Application()
    app.router.add_route("GET", "/api/v1/namespaces/{ns}/pods/{pod}/portforward", handler)
    runner = web.AppRunner(app, shutdown_timeout=1.0)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    session = aiohttp.ClientSession()
    h = Harness(f"http://127.0.0.1:{port}", session, pool)
    state["h"] = h
    try:
        h.routes[9000] = await pool.start_backend("echo", "echo-pod")
        h.routes[8080] = await pool.start_backend("http", POD)
        h.routes[7000] = await pool.start_backend("line", "line-pod")
        yield h
    finally:
        await session.close()
        await asyncio.wait_for(runner.cleanup(), STEP)
        await asyncio.wait_for(pool.stop(), STEP)


async def recv(ws: aiohttp.ClientWebSocketResponse) -> aiohttp.WSMessage:
    return await asyncio.wait_for(ws.receive(), STEP)


async def recv_binary(ws: aiohttp.ClientWebSocketResponse) -> bytes:
    msg = await recv(ws)
    assert msg.type is WSMsgType.BINARY, msg
    data: bytes = msg.data
    return data


async def read_channel(ws: aiohttp.ClientWebSocketResponse, channel: int, n: int) -> bytes:
    """Collect n bytes of one channel, ignoring nothing: any other frame fails the test."""
    out = bytearray()
    while len(out) < n:
        frame = await recv_binary(ws)
        assert frame[0] == channel, frame[:20]
        out += frame[1:]
    return bytes(out)


async def until_closed(ws: aiohttp.ClientWebSocketResponse) -> aiohttp.WSMessage:
    """Skip data until the close: returns the CLOSE / CLOSED message."""
    while True:
        msg = await recv(ws)
        if msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSED, WSMsgType.ERROR):
            return msg


# --- query checks and negotiation -----------------------------------------------------------


async def test_missing_ports_is_the_kubelets_plain_400(harness: Harness) -> None:
    async with harness.session.get(
        f"{harness.url}{PF_PATH}",
        headers={
            "Upgrade": "websocket",
            "Connection": "Upgrade",
            "Sec-WebSocket-Version": "13",
            "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
        },
    ) as resp:
        assert resp.status == 400
        assert resp.content_type == "text/plain"
        assert await resp.text() == 'query parameter "port" is required\n'


@pytest.mark.parametrize(
    ("query", "text"),
    [("ports=0", 'port "0" must be > 0'), ("ports=80&ports=0", 'port "80,0" must be > 0')],
)
async def test_port_zero_is_the_kubelets_plain_400(harness: Harness, query: str, text: str) -> None:
    with pytest.raises(aiohttp.WSServerHandshakeError) as info:
        await harness.connect(query)
    assert info.value.status == 400
    async with harness.session.get(
        harness.pf_url(query),
        headers={
            "Upgrade": "websocket",
            "Connection": "Upgrade",
            "Sec-WebSocket-Version": "13",
            "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
        },
    ) as resp:
        assert resp.status == 400
        assert await resp.text() == text


@pytest.mark.parametrize(
    ("query", "message"),
    [
        (
            "ports=70000",
            'cannot convert to []int32: strconv.ParseUint: parsing "70000": value out of range',
        ),
        (
            "ports=abc",
            'cannot convert to []int32: strconv.ParseUint: parsing "abc": invalid syntax',
        ),
        ("ports=80,", 'cannot convert to []int32: strconv.ParseUint: parsing "": invalid syntax'),
        ("ports=-1", 'cannot convert to []int32: strconv.ParseUint: parsing "-1": invalid syntax'),
    ],
)
async def test_unparsable_ports_are_the_api_servers_json_400(
    harness: Harness, query: str, message: str
) -> None:
    async with harness.session.get(harness.pf_url(query)) as resp:
        assert resp.status == 400
        assert resp.content_type == "application/json"
        body = json.loads(await resp.text())
    assert body == {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": "BadRequest",
        "code": 400,
    }


async def test_v5_only_is_403_with_empty_body(harness: Harness) -> None:
    async with harness.session.get(
        harness.pf_url("ports=8080"),
        headers={
            "Upgrade": "websocket",
            "Connection": "Upgrade",
            "Sec-WebSocket-Version": "13",
            "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
            "Sec-WebSocket-Protocol": "v5.channel.k8s.io",
        },
    ) as resp:
        assert resp.status == 403
        assert await resp.read() == b""


async def test_v5_and_v4_offered_picks_v4(harness: Harness) -> None:
    ws = await harness.connect("ports=8080", ("v5.channel.k8s.io", "v4.channel.k8s.io"))
    try:
        assert ws.protocol == "v4.channel.k8s.io"
        assert await recv_binary(ws) == b"\x00\x90\x1f"  # 8080 little-endian
    finally:
        await ws.close()


# --- frames after the upgrade ---------------------------------------------------------------


async def test_prefix_frames_one_port(harness: Harness) -> None:
    harness.routes[18080] = harness.routes[8080]
    ws = await harness.connect("ports=18080")
    try:
        assert ws.protocol == "v4.channel.k8s.io"
        assert await recv_binary(ws) == b"\x00\xa0\x46"
        assert await recv_binary(ws) == b"\x01\xa0\x46"
        # then nothing until the client sends
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(ws.receive(), 0.2)
    finally:
        await ws.close()


async def test_prefix_frames_two_ports_repeated_and_comma(harness: Harness) -> None:
    for query in ("ports=9000&ports=8080", "ports=9000,8080"):
        ws = await harness.connect(query)
        try:
            frames = [await recv_binary(ws) for _ in range(4)]
            assert frames == [b"\x00\x28\x23", b"\x01\x28\x23", b"\x02\x90\x1f", b"\x03\x90\x1f"]
        finally:
            await ws.close()


async def test_base64_protocol_uses_text_frames(harness: Harness) -> None:
    harness.routes[18080] = harness.routes[9000]
    ws = await harness.connect("ports=18080", ("v4.base64.channel.k8s.io",))
    try:
        assert ws.protocol == "v4.base64.channel.k8s.io"
        first, second = await recv(ws), await recv(ws)
        assert (first.type, first.data) == (WSMsgType.TEXT, "0oEY=")
        assert (second.type, second.data) == (WSMsgType.TEXT, "1oEY=")
        await ws.send_str("0" + "aGVsbG8=")  # "hello" to the echo pod
        echoed = await recv(ws)
        assert (echoed.type, echoed.data) == (WSMsgType.TEXT, "0aGVsbG8=")
    finally:
        await ws.close()


async def test_no_protocol_offered_is_binary_without_header(harness: Harness) -> None:
    ws = await harness.connect("ports=9000", ())
    try:
        assert ws.protocol is None
        assert await recv_binary(ws) == b"\x00\x28\x23"
        assert await recv_binary(ws) == b"\x01\x28\x23"
        await ws.send_bytes(b"\x00ping")
        assert await recv_binary(ws) == b"\x00ping"
    finally:
        await ws.close()


async def test_echo_round_trip_byte_exact(harness: Harness) -> None:
    ws = await harness.connect("ports=9000")
    try:
        await recv_binary(ws)
        await recv_binary(ws)
        payload = bytes(range(256)) * 1024  # 256 KiB in several frames
        for i in range(0, len(payload), 50_000):
            await ws.send_bytes(b"\x00" + payload[i : i + 50_000])
        assert await read_channel(ws, 0, len(payload)) == payload
    finally:
        await ws.close()


async def test_frames_on_other_channels_are_ignored(harness: Harness) -> None:
    ws = await harness.connect("ports=9000")
    try:
        await recv_binary(ws)
        await recv_binary(ws)
        await ws.send_bytes(b"\x01to-the-error-channel")
        await ws.send_bytes(b"\x07no-such-channel")
        await ws.send_bytes(b"")
        await ws.send_bytes(b"\x00after")
        assert await read_channel(ws, 0, 5) == b"after"
    finally:
        await ws.close()


async def test_refused_backend_error_text_then_dropped(harness: Harness) -> None:
    ws = await harness.connect("ports=18099")
    assert await recv_binary(ws) == b"\x00\xb3\x46"
    assert await recv_binary(ws) == b"\x01\xb3\x46"
    error = await recv_binary(ws)
    assert error == (
        b"\x01error forwarding port 18099 to pod web, uid " + UID.encode() + b": failed to "
        b'connect to localhost:18099 inside namespace of pod "web": dial tcp 127.0.0.1:18099: '
        b"connect: connection refused"
    )
    end = await until_closed(ws)
    assert end.type is WSMsgType.CLOSED  # no close frame from the server
    assert ws.close_code == 1006


async def test_backend_eof_closes_websocket_after_data(harness: Harness) -> None:
    ws = await harness.connect("ports=8080")
    try:
        await recv_binary(ws)
        await recv_binary(ws)
        await ws.send_bytes(b"\x00GET /bytes/100000 HTTP/1.0\r\n\r\n")
        data = bytearray()
        while True:
            msg = await recv(ws)
            if msg.type is not WSMsgType.BINARY:
                break
            assert msg.data[0] == 0
            data += msg.data[1:]
        assert msg.type is WSMsgType.CLOSE
        assert msg.data == 1000
        head, _, body = bytes(data).partition(b"\r\n\r\n")
        assert b"Content-Length: 100000" in head
        assert body == bytes_body(100_000)
    finally:
        await ws.close()


async def test_client_close_closes_backend_and_answers_1000(harness: Harness) -> None:
    got_eof = asyncio.Event()
    received = bytearray()

    async def probe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"ready")
        while chunk := await reader.read(1024):
            received.extend(chunk)
        got_eof.set()
        writer.close()

    server = await asyncio.start_server(probe, "127.0.0.1", 0)
    try:
        harness.routes[6000] = server.sockets[0].getsockname()[:2]
        ws = await harness.connect("ports=6000")
        await recv_binary(ws)
        await recv_binary(ws)
        assert await read_channel(ws, 0, 5) == b"ready"
        await ws.send_bytes(b"\x00bye")
        await asyncio.wait_for(ws.close(), STEP)
        assert ws.close_code == 1000
        # The sandbox closed its connection to the pod's port after the client left.
        await asyncio.wait_for(got_eof.wait(), STEP)
        assert bytes(received) == b"bye"
    finally:
        server.close()
        await server.wait_closed()


async def test_two_ports_on_one_websocket(harness: Harness) -> None:
    ws = await harness.connect("ports=9000&ports=7000")
    try:
        for _ in range(4):
            await recv_binary(ws)
        await ws.send_bytes(b"\x02first\n")
        assert await read_channel(ws, 2, len(b"line-pod first\n")) == b"line-pod first\n"
        await ws.send_bytes(b"\x00echo-me")
        assert await read_channel(ws, 0, 7) == b"echo-me"
        assert len(harness.dialled) == 2  # one pod connection per port, dialled at once
    finally:
        await ws.close()


async def _blocks_before(limit: int, step: Callable[[], Awaitable[int]]) -> int:
    """Run step() (which returns bytes moved) until it stalls; fail if `limit` bytes pass first.

    A stall is a step that does not finish within a couple of seconds: with bounded buffers
    the writer stops for good, so this never depends on the machine's speed.
    """
    moved = 0
    while moved < limit:
        try:
            moved += await asyncio.wait_for(step(), 2.0)
        except TimeoutError:
            return moved
    pytest.fail(f"{moved} bytes went through without back-pressure")


async def test_slow_client_stops_the_pod_side(harness: Harness) -> None:
    """A client that does not read must make the sandbox stop reading from the pod."""
    written = 0
    stalled = asyncio.Event()

    async def firehose(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal written
        chunk = b"z" * 65536

        async def step() -> int:
            writer.write(chunk)
            await writer.drain()
            return len(chunk)

        try:
            written = await _blocks_before(256 * 1024 * 1024, step)
            stalled.set()
            await reader.read()  # hold the connection until the sandbox drops it
        finally:
            writer.close()

    server = await asyncio.start_server(firehose, "127.0.0.1", 0)
    try:
        harness.routes[6001] = server.sockets[0].getsockname()[:2]
        ws = await harness.connect("ports=6001")
        await asyncio.wait_for(stalled.wait(), 60)
        # kernel buffers on two sockets plus a few 64 KiB chunks: nowhere near 256 MiB
        assert written < 64 * 1024 * 1024
        await ws.close()
    finally:
        server.close()
        await server.wait_closed()


async def test_slow_pod_stops_the_client_side(harness: Harness) -> None:
    """A pod that does not read must make the sandbox stop reading the WebSocket."""
    connected = asyncio.Event()
    release = asyncio.Event()

    async def sink(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connected.set()
        await release.wait()
        writer.close()

    server = await asyncio.start_server(sink, "127.0.0.1", 0)
    try:
        harness.routes[6002] = server.sockets[0].getsockname()[:2]
        ws = await harness.connect("ports=6002")
        await recv_binary(ws)
        await recv_binary(ws)
        await asyncio.wait_for(connected.wait(), STEP)
        frame = b"\x00" + b"q" * 65536

        async def step() -> int:
            await ws.send_bytes(frame)
            return len(frame) - 1

        sent = await _blocks_before(256 * 1024 * 1024, step)
        assert sent < 64 * 1024 * 1024
        release.set()  # the pod goes away; what was queued is dropped, the close gets through
        await asyncio.wait_for(ws.close(), STEP)
    finally:
        release.set()
        server.close()
        await server.wait_closed()


async def test_client_vanishing_mid_transfer_closes_the_pod_connection(harness: Harness) -> None:
    closed = asyncio.Event()
    started = asyncio.Event()

    async def firehose(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        chunk = b"f" * 65536
        try:
            while True:
                writer.write(chunk)
                await writer.drain()
                started.set()
        except ConnectionError:
            pass
        finally:
            closed.set()
            writer.close()

    server = await asyncio.start_server(firehose, "127.0.0.1", 0)
    try:
        harness.routes[6003] = server.sockets[0].getsockname()[:2]
        ws = await harness.connect("ports=6003")
        await recv_binary(ws)
        await recv_binary(ws)
        assert (await recv_binary(ws))[0] == 0
        await asyncio.wait_for(started.wait(), STEP)
        # no close frame, just gone (a killed client)
        transport = ws._response.connection.transport  # type: ignore[union-attr]
        assert transport is not None
        transport.abort()
        await asyncio.wait_for(closed.wait(), STEP)
    finally:
        server.close()
        await server.wait_closed()


async def test_base64_frames_with_bad_payload_are_dropped(harness: Harness) -> None:
    ws = await harness.connect("ports=9000", ("v4.base64.channel.k8s.io",))
    try:
        await recv(ws)
        await recv(ws)
        await ws.send_str("0***not base64***")
        await ws.send_str("0b2s=")  # "ok"
        msg = await recv(ws)
        assert (msg.type, msg.data) == (WSMsgType.TEXT, "0b2s=")
    finally:
        await ws.close()


async def test_pod_connection_reset_is_reported_and_dropped(harness: Harness) -> None:
    async def resetter(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"partial")
        await writer.drain()
        await reader.readexactly(2)  # the client's "go"
        sock = writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        writer.transport.abort()  # with linger 0: RST, a "connection reset by peer"

    server = await asyncio.start_server(resetter, "127.0.0.1", 0)
    try:
        harness.routes[6004] = server.sockets[0].getsockname()[:2]
        ws = await harness.connect("ports=6004")
        await recv_binary(ws)
        await recv_binary(ws)
        assert await read_channel(ws, 0, 7) == b"partial"
        await ws.send_bytes(b"\x00go")
        error = await recv_binary(ws)
        assert error.startswith(
            f"\x01error forwarding port 6004 to pod web, uid {UID}: read tcp 127.0.0.1:".encode()
        )
        assert error.endswith(b"->127.0.0.1:6004: read: connection reset by peer")
        await until_closed(ws)
        assert ws.close_code == 1006
    finally:
        server.close()
        await server.wait_closed()


async def test_large_transfers_both_ways_are_byte_exact(harness: Harness) -> None:
    n = 24 * 1024 * 1024 + 5
    ws = await harness.connect("ports=8080&ports=9000")
    try:
        for _ in range(4):
            await recv_binary(ws)
        upload = bytes_body(n, offset=7)

        async def send() -> None:
            for i in range(0, n, 65536):
                await ws.send_bytes(b"\x02" + upload[i : i + 65536])

        sender = asyncio.create_task(send())
        await ws.send_bytes(f"\x00GET /bytes/{n} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        http = bytearray()
        echoed = bytearray()
        head_len = -1
        while len(echoed) < n or head_len < 0 or len(http) < head_len + n:
            frame = await recv_binary(ws)
            if frame[0] == 0:
                http += frame[1:]
                if head_len < 0 and b"\r\n\r\n" in http:
                    head_len = http.index(b"\r\n\r\n") + 4
            else:
                assert frame[0] == 2
                echoed += frame[1:]
        await sender
        assert bytes(echoed) == upload
        assert bytes(http[head_len:]) == bytes_body(n)
    finally:
        await ws.close()


async def test_pings_are_answered(harness: Harness) -> None:
    ws = await harness.session.ws_connect(
        harness.pf_url("ports=9000"),
        protocols=("v4.channel.k8s.io",),
        autoping=False,
        timeout=aiohttp.ClientWSTimeout(ws_close=STEP),
    )
    try:
        await recv_binary(ws)
        await recv_binary(ws)
        await ws.ping(b"keepalive")
        pong = await recv(ws)
        assert (pong.type, pong.data) == (WSMsgType.PONG, b"keepalive")
    finally:
        await ws.close()
