"""--http-log on a real forward: one line per request, exact, for a scripted pipelined
keep-alive sequence against the sandbox's web pods; the bytes through are the same as
without the log; TLS is named once and not read."""

from __future__ import annotations

import asyncio
import os
import re

import pytest

from portfwd.engine.manager import Manager
from portfwd.engine.model import ForwardSpec, ForwardState, LogKind
from tests.support.wait import eventually

pytestmark = pytest.mark.timeout(120)

BODY = os.urandom(1000)
REQUESTS = (
    b"GET / HTTP/1.1\r\nHost: web\r\n\r\n"
    b"GET /bytes/300000 HTTP/1.1\r\nHost: web\r\n\r\n"
    b"HEAD / HTTP/1.1\r\nHost: web\r\n\r\n"
    b"GET /nope?q=1 HTTP/1.1\r\nHost: web\r\n\r\n"
    b"POST /upload HTTP/1.1\r\nHost: web\r\nContent-Length: 1000\r\n\r\n"
    + BODY
    + b"GET /cluster HTTP/1.1\r\nHost: web\r\nConnection: close\r\n\r\n"
)


async def _through(port: int, data: bytes) -> bytes:
    reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 20)
    try:
        writer.write(data)
        await writer.drain()
        return await asyncio.wait_for(reader.read(-1), 30)  # the last request closes
    finally:
        writer.close()


def _http_lines(manager: Manager, fid: str) -> list[str]:
    return [e.message for e in manager.logs(fid) if e.kind is LogKind.HTTP]


async def test_each_request_is_one_exact_line_and_the_bytes_are_unchanged(
    manager: Manager,
) -> None:
    plain = await manager.add(ForwardSpec(target="svc/web", remote_port=80))
    logged = await manager.add(ForwardSpec(target="svc/web", remote_port=80, http_log=True))
    for fid in (plain, logged):
        assert manager.get(fid).state is ForwardState.ACTIVE, manager.get(fid).reason
    # The same pod answers both (X-Sandbox-Pod is in every head).
    assert manager.get(plain).pod == manager.get(logged).pod
    without = await _through(manager.get(plain).local_port, REQUESTS)
    with_log = await _through(manager.get(logged).local_port, REQUESTS)
    assert with_log == without
    assert without.count(b"HTTP/1.1 ") == 6 and len(without) > 300_000

    await eventually(lambda: len(_http_lines(manager, logged)) == 6, limit=20)
    lines = [line.split(" ", 1)[1] for line in _http_lines(manager, logged)]  # the peer first
    took = r" in \d+(\.\d+)? ms"
    patterns = [
        r"GET / -> 200, \d+ B" + took,  # "hello from POD"
        r"GET /bytes/300000 -> 200, 293\.0 KiB" + took,
        r"HEAD / -> 200, 0 B" + took,
        r"GET /nope\?q=1 -> 404, 19 B" + took,
        r"POST /upload -> 405, 29 B" + took + ", sent 1000 B",
        r"GET /cluster -> 200, 8 B" + took,
    ]
    for line, pattern in zip(lines, patterns, strict=True):
        assert re.fullmatch(pattern, line), (line, pattern)
    assert _http_lines(manager, plain) == []


async def test_tls_is_named_once_per_forward(manager: Manager) -> None:
    fid = await manager.add(ForwardSpec(target="svc/web", remote_port=80, http_log=True))
    port = manager.get(fid).local_port
    hello = b"\x16\x03\x01\x00\x05" + b"\x01\x00\x00\x01\x00" + b"\r\n\r\n"
    for _ in range(3):
        await _through(port, hello)
    await eventually(lambda: _http_lines(manager, fid) != [], limit=20)
    assert _http_lines(manager, fid) == ["HTTP log: TLS: encrypted traffic is not logged"]


async def test_a_stream_that_is_not_http_is_said_once_and_passes_unchanged(
    manager: Manager,
) -> None:
    fid = await manager.add(
        ForwardSpec(target="deploy/echo", remote_port=9000, namespace="demo", http_log=True)
    )
    port = manager.get(fid).local_port
    redis = b"*1\r\n$4\r\nPING\r\n" * 1000
    for _ in range(3):
        reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 20)
        try:
            writer.write(redis)
            await writer.drain()
            assert await asyncio.wait_for(reader.readexactly(len(redis)), 20) == redis
        finally:
            writer.close()
    await eventually(lambda: _http_lines(manager, fid) != [], limit=20)
    await eventually(lambda: manager.get(fid).stats.connections_total == 3, limit=20)
    assert _http_lines(manager, fid) == ["HTTP log: not HTTP"]
