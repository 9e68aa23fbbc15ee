"""The sandbox's built-in backends over real loopback sockets."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from portfwd.sandbox.backends import BackendPool, bytes_body

STEP = 10.0  # bound for any single wait, not a performance threshold


@pytest_asyncio.fixture
async def pool() -> AsyncIterator[BackendPool]:
    p = BackendPool()
    try:
        yield p
    finally:
        await asyncio.wait_for(p.stop(), STEP)


async def open_(address: tuple[str, int]) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.wait_for(asyncio.open_connection(*address), STEP)


async def read_response(reader: asyncio.StreamReader) -> tuple[int, dict[str, str], bytes]:
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), STEP)
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ")[1])
    headers = {}
    for line in lines[1:]:
        if line:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
    body = await asyncio.wait_for(reader.readexactly(int(headers["content-length"])), STEP)
    return status, headers, body


async def test_echo_returns_every_byte(pool: BackendPool) -> None:
    reader, writer = await open_(await pool.start_backend("echo", "echo-1"))
    payload = bytes(range(256)) * 4096 + b"tail"  # 1 MiB + 4

    async def send() -> None:
        writer.write(payload)
        await writer.drain()
        writer.write_eof()

    sender = asyncio.create_task(send())
    received = await asyncio.wait_for(reader.read(-1), STEP)  # until the backend's EOF
    await sender
    writer.close()
    assert received == payload


async def test_echo_pauses_for_a_slow_reader(pool: BackendPool) -> None:
    """A client that never reads must not make the backend buffer everything it sends."""
    _reader, writer = await open_(await pool.start_backend("echo", "echo-1"))
    chunk = b"x" * 65536
    sent = 0
    blocked = False
    try:
        # The socket buffers fill up, the backend stops reading, and our drain blocks for good
        # long before 64 MiB (an unbounded backend would swallow all of it).
        async with asyncio.timeout(2.0):
            while sent < 64 * 1024 * 1024:
                writer.write(chunk)
                await writer.drain()
                sent += len(chunk)
    except TimeoutError:
        blocked = True
    writer.transport.abort()
    assert blocked, f"sent {sent} bytes to a client that never reads without blocking"


async def test_line_answers_with_label(pool: BackendPool) -> None:
    reader, writer = await open_(await pool.start_backend("line", "api-7d9-x2"))
    writer.write(b"hello\nsecond line\n")
    assert await asyncio.wait_for(reader.readline(), STEP) == b"api-7d9-x2 hello\n"
    assert await asyncio.wait_for(reader.readline(), STEP) == b"api-7d9-x2 second line\n"
    writer.write(b"last")
    writer.write_eof()
    assert await asyncio.wait_for(reader.read(-1), STEP) == b"api-7d9-x2 last\n"
    writer.close()


async def test_http_routes(pool: BackendPool) -> None:
    address = await pool.start_backend("http", "web-0")
    reader, writer = await open_(address)
    # one keep-alive connection for several requests
    writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    status, headers, body = await read_response(reader)
    assert (status, body) == (200, b"hello from web-0\n")
    assert headers["connection"] == "keep-alive"
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    assert (await read_response(reader))[::2] == (200, b"ok\n")
    writer.write(b"GET /nope HTTP/1.1\r\nHost: x\r\n\r\n")
    assert (await read_response(reader))[0] == 404
    writer.write(b"GET /bytes/1000 HTTP/1.1\r\nHost: x\r\n\r\n")
    status, headers, body = await read_response(reader)
    assert (status, headers["content-length"], body) == (200, "1000", bytes_body(1000))
    writer.write(b"GET /bytes/abc HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert (await read_response(reader))[0] == 400
    assert await asyncio.wait_for(reader.read(), STEP) == b""  # closed after Connection: close
    writer.close()


async def test_http_large_body_is_exact(pool: BackendPool) -> None:
    reader, writer = await open_(await pool.start_backend("http", "web-0"))
    n = 5 * 1024 * 1024 + 17
    writer.write(f"GET /bytes/{n} HTTP/1.0\r\n\r\n".encode())
    status, _, body = await read_response(reader)
    assert status == 200
    assert len(body) == n and body == bytes_body(n)
    assert await asyncio.wait_for(reader.read(), STEP) == b""  # HTTP/1.0: closed
    writer.close()


async def test_http_head_and_post_body_keep_the_connection_in_step(pool: BackendPool) -> None:
    reader, writer = await open_(await pool.start_backend("http", "web-0"))
    writer.write(b"HEAD /bytes/50 HTTP/1.1\r\n\r\n")
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), STEP)
    assert b"Content-Length: 50" in head
    writer.write(b"POST / HTTP/1.1\r\nContent-Length: 5\r\n\r\nabcdeGET / HTTP/1.1\r\n\r\n")
    assert (await read_response(reader))[0] == 405
    assert (await read_response(reader))[2] == b"hello from web-0\n"
    writer.close()


def test_bytes_body_offsets_are_consistent() -> None:
    whole = bytes_body(200_000)
    assert bytes_body(1000, offset=70_000) == whole[70_000:71_000]
    assert whole[:3] == b"\x00\x01\x02" and whole[251] == 0


async def test_stop_closes_servers_and_open_connections(pool: BackendPool) -> None:
    echo = await pool.start_backend("echo", "a")
    http = await pool.start_backend("http", "b")
    r1, w1 = await open_(echo)
    r2, w2 = await open_(http)
    w1.write(b"x")
    assert await asyncio.wait_for(r1.readexactly(1), STEP) == b"x"
    assert pool.open_connections() == 2
    await asyncio.wait_for(pool.stop(), STEP)
    # both idle connections were ended by the pool
    assert await asyncio.wait_for(r1.read(), STEP) == b""
    assert await asyncio.wait_for(r2.read(), STEP) == b""
    for address in (echo, http):
        with pytest.raises(ConnectionRefusedError):
            await asyncio.open_connection(*address)
    w1.close()
    w2.close()


async def test_stop_backend_only_stops_that_label(pool: BackendPool) -> None:
    gone = await pool.start_backend("echo", "pod-a")
    kept = await pool.start_backend("echo", "pod-b")
    r1, w1 = await open_(gone)
    await pool.stop_backend("pod-a")
    assert await asyncio.wait_for(r1.read(), STEP) == b""
    r2, w2 = await open_(kept)
    w2.write(b"still here")
    assert await asyncio.wait_for(r2.readexactly(10), STEP) == b"still here"
    assert list(pool.addresses) == ["pod-b"]
    w1.close()
    w2.close()


async def test_unknown_kind_is_rejected(pool: BackendPool) -> None:
    with pytest.raises(ValueError, match="unknown backend kind"):
        await pool.start_backend("redis", "x")
