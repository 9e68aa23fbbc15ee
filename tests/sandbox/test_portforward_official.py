"""Fidelity: the official `kubernetes` Python client port-forwards through the sandbox.

The official client (kubernetes.stream.portforward, test-only) is an independent
implementation of the client side of the v4 protocol: it offers v5 and v4, checks the prefix
frames byte by byte (port number, frame size) and fails on any unexpected frame. If it moves
bytes intact through our kubelet side, that side speaks the protocol as a real kubelet does.
It is synchronous (one proxy thread per forward), so it runs in worker threads with timeouts.
Transfers stay small: its receive buffer grows by concatenation (quadratic).
"""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import pytest
import pytest_asyncio
from aiohttp import web

from portfwd.sandbox.backends import BackendPool, bytes_body
from portfwd.sandbox.portforward import serve_portforward
from tests.sandbox.official_kit import STEP, echo_through

kubernetes = pytest.importorskip("kubernetes")
from kubernetes.client import ApiClient, Configuration, CoreV1Api  # noqa: E402
from kubernetes.stream import portforward  # noqa: E402

UID = "8f0e2c1a-0000-4000-8000-00000000abcd"


@dataclass
class Kubelet:
    """A bare aiohttp app serving the real port-forward path, and a CoreV1Api pointing at it."""

    api: CoreV1Api
    routes: dict[int, tuple[str, int]]


@pytest_asyncio.fixture
async def kubelet() -> AsyncIterator[Kubelet]:
    pool = BackendPool()
    routes: dict[int, tuple[str, int]] = {}

    async def dial(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if port not in routes:
            raise ConnectionRefusedError("connect: connection refused")
        return await asyncio.open_connection(*routes[port])

    async def handler(request: web.Request) -> web.StreamResponse:
        return await serve_portforward(
            request, pod_name=request.match_info["pod"], pod_uid=UID, dial=dial, close_linger=0.2
        )

    app = web.Application()
    app.router.add_get("/api/v1/namespaces/{ns}/pods/{pod}/portforward", handler)
    runner = web.AppRunner(app, shutdown_timeout=1.0)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    config = Configuration()
    config.host = f"http://127.0.0.1:{runner.addresses[0][1]}"
    api_client = ApiClient(config)
    try:
        routes[9000] = await pool.start_backend("echo", "echo-pod")
        routes[8080] = await pool.start_backend("http", "web-pod")
        yield Kubelet(CoreV1Api(api_client), routes)
    finally:
        await asyncio.to_thread(api_client.close)
        await asyncio.wait_for(runner.cleanup(), STEP)
        await asyncio.wait_for(pool.stop(), STEP)


def open_forward(api: CoreV1Api, ns: str, pod: str, ports: str) -> Any:
    return portforward(api.connect_get_namespaced_pod_portforward, pod, ns, ports=ports)


def http_get(pf: Any, port: int, path: str) -> bytes:
    """One HTTP/1.0 request over the forward; returns head and Content-Length bytes of body.

    It does not wait for EOF: in v4 a port has no half-close, so the socket only ends when the
    whole WebSocket does, i.e. when every port of it is done (as with a real kubelet).
    """
    sock: socket.socket = pf.socket(port)
    sock.settimeout(STEP)
    sock.sendall(f"GET {path} HTTP/1.0\r\nHost: pod\r\n\r\n".encode())
    out = bytearray()
    while b"\r\n\r\n" not in out:
        chunk = sock.recv(65536)
        if not chunk:
            return bytes(out)
        out += chunk
    head = out[: out.index(b"\r\n\r\n") + 4]
    length = int(head.split(b"Content-Length: ")[1].split(b"\r\n")[0])
    while len(out) < len(head) + length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        out += chunk
    return bytes(out)


async def in_thread(fn: Callable[..., Any], *args: Any) -> Any:
    return await asyncio.wait_for(asyncio.to_thread(fn, *args), 3 * STEP)


async def test_official_client_echo_is_byte_exact(kubelet: Kubelet) -> None:
    payload = os.urandom(64 * 1024)
    pf = await in_thread(open_forward, kubelet.api, "default", "echo-pod", "9000")
    try:
        assert await in_thread(echo_through, pf, 9000, payload) == payload
        assert pf.error(9000) is None
    finally:
        pf.close()


async def test_official_client_http_get_bytes(kubelet: Kubelet) -> None:
    pf = await in_thread(open_forward, kubelet.api, "default", "web-pod", "8080")
    try:
        response = await in_thread(http_get, pf, 8080, "/bytes/1000")
    finally:
        pf.close()
    head, _, body = response.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK")
    assert b"Content-Length: 1000" in head
    assert body == bytes_body(1000)


async def test_official_client_two_ports_one_websocket(kubelet: Kubelet) -> None:
    pf = await in_thread(open_forward, kubelet.api, "default", "multi", "9000,8080")
    try:
        assert await in_thread(echo_through, pf, 9000, b"first port") == b"first port"
        response = await in_thread(http_get, pf, 8080, "/")
        assert response.endswith(b"hello from web-pod\n")
    finally:
        pf.close()


async def test_official_client_sees_the_kubelet_error_text(kubelet: Kubelet) -> None:
    pf = await in_thread(open_forward, kubelet.api, "default", "web", "18099")
    try:

        def wait_eof() -> bytes:
            sock: socket.socket = pf.socket(18099)
            sock.settimeout(STEP)
            return sock.recv(1024)

        assert await in_thread(wait_eof) == b""
        assert pf.error(18099) == (
            f"error forwarding port 18099 to pod web, uid {UID}: failed to connect to "
            'localhost:18099 inside namespace of pod "web": dial tcp 127.0.0.1:18099: '
            "connect: connection refused"
        )
    finally:
        pf.close()
