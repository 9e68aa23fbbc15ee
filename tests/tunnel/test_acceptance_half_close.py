"""Acceptance: a client that half-closes (shutdown(SHUT_WR)) still gets the whole answer.

Issue 2 §5: "local EOF closes the WebSocket after flushing; remote close gives local EOF".
The v4 protocol has no half-close, so after the client's EOF portfwd must decide when the
pod is done. Two shapes, through the real sandbox (svc/web serves GET /bytes/N):

- request, shutdown(WR) at once, read the response (`nc -N`): covered by test_pump.py too;
- request, read the first bytes of a large response, *then* shutdown(WR), read the rest
  (a client that finishes its upload while the download streams, e.g. `cat x | nc -N` to an
  echo or a transforming service). Here the pump's heuristic ("the last bytes moved pod ->
  client, so the pod has answered everything": pump.py, the LOCAL_EOF branch) closes the
  WebSocket at once and the client gets a truncated response.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from portfwd.engine.manager import Manager
from portfwd.engine.model import ForwardSpec, ForwardState
from portfwd.sandbox.cluster import SandboxCluster

pytestmark = pytest.mark.timeout(120)

SIZE = 20 * 1024 * 1024


async def _get(port: int, *, eof_after_first_bytes: bool) -> tuple[bytes, int]:
    """HTTP/1.0 GET /bytes/SIZE with a half-close; (status line, body bytes received)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(f"GET /bytes/{SIZE} HTTP/1.0\r\nHost: web\r\n\r\n".encode())
        await writer.drain()
        data = bytearray()
        if eof_after_first_bytes:
            data += await asyncio.wait_for(reader.read(1), 20)
            assert data
        writer.write_eof()
        while chunk := await asyncio.wait_for(reader.read(1 << 20), 30):
            data += chunk
    finally:
        writer.close()
    head, _, body = bytes(data).partition(b"\r\n\r\n")
    return head.split(b"\r\n")[0], len(body)


@pytest_asyncio.fixture
async def web_port(sandbox: SandboxCluster) -> AsyncIterator[int]:
    manager = Manager(kubeconfig=str(sandbox.kubeconfig_path))
    try:
        fid = await manager.add(ForwardSpec(target="svc/web", remote_port=80))
        assert manager.get(fid).state is ForwardState.ACTIVE, manager.get(fid).reason
        yield manager.get(fid).local_port
    finally:
        await asyncio.wait_for(manager.shutdown(), 30)


async def test_request_then_eof_gets_the_whole_response(web_port: int) -> None:
    status, got = await _get(web_port, eof_after_first_bytes=False)
    assert status == b"HTTP/1.1 200 OK"
    assert got == SIZE


async def test_eof_while_the_response_streams_gets_the_whole_response(web_port: int) -> None:
    status, got = await _get(web_port, eof_after_first_bytes=True)
    assert status == b"HTTP/1.1 200 OK"
    assert got == SIZE
