"""Fidelity through the whole sandbox (the `sandbox` fixture, demo topology).

The official `kubernetes` client, over TLS with the sandbox kubeconfig, finds pods through the
API and port-forwards to them.

The official client is synchronous (a proxy thread per forward): every call runs in a worker
thread, bounded by a timeout. Transfers stay small (its receive buffer is quadratic).
"""

from __future__ import annotations

import asyncio
import os
import socket
import ssl
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import pytest
import pytest_asyncio

from portfwd.sandbox.backends import bytes_body
from portfwd.sandbox.cluster import SandboxCluster
from tests.sandbox.official_kit import STEP, echo_through

kubernetes = pytest.importorskip("kubernetes")
from kubernetes import config as kube_config  # noqa: E402
from kubernetes.client import CoreV1Api  # noqa: E402
from kubernetes.stream import portforward  # noqa: E402


@pytest_asyncio.fixture
async def api(sandbox: SandboxCluster) -> AsyncIterator[CoreV1Api]:
    client = await asyncio.to_thread(
        kube_config.new_client_from_config, config_file=str(sandbox.kubeconfig_path)
    )
    try:
        yield CoreV1Api(client)
    finally:
        await asyncio.to_thread(client.close)


async def in_thread(fn: Callable[..., Any], *args: Any) -> Any:
    return await asyncio.wait_for(asyncio.to_thread(fn, *args), 3 * STEP)


def running_pod(api: CoreV1Api, selector: str) -> tuple[str, str]:
    """(name, uid) of a Running, Ready pod, found through the API as a user would."""
    pods = api.list_namespaced_pod("demo", label_selector=selector).items
    for pod in pods:
        ready = any(c.type == "Ready" and c.status == "True" for c in (pod.status.conditions or []))
        if pod.status.phase == "Running" and ready:
            return pod.metadata.name, pod.metadata.uid
    raise AssertionError(f"no ready pod for {selector}: {[p.metadata.name for p in pods]}")


def open_forward(api: CoreV1Api, pod: str, ports: str) -> Any:
    return portforward(api.connect_get_namespaced_pod_portforward, pod, "demo", ports=ports)


def http_get(pf: Any, port: int, path: str) -> bytes:
    """HTTP/1.0 GET; read to EOF (one port: the WebSocket ends when the pod closes)."""
    sock: socket.socket = pf.socket(port)
    sock.settimeout(STEP)
    sock.sendall(f"GET {path} HTTP/1.0\r\nHost: pod\r\n\r\n".encode())
    out = bytearray()
    while chunk := sock.recv(65536):
        out += chunk
    return bytes(out)


def read_error(pf: Any, port: int) -> str | None:
    """Wait for the forward's socket to end, then return the error-channel text."""
    sock: socket.socket = pf.socket(port)
    sock.settimeout(STEP)
    while sock.recv(65536):
        pass
    error: str | None = pf.error(port)
    return error


async def test_official_client_echo_through_sandbox(api: CoreV1Api) -> None:
    pod, _ = await in_thread(running_pod, api, "app=echo")
    payload = os.urandom(64 * 1024)
    pf = await in_thread(open_forward, api, pod, "9000")
    try:
        assert await in_thread(echo_through, pf, 9000, payload) == payload
        assert pf.error(9000) is None
    finally:
        pf.close()


async def test_official_client_http_bytes_through_sandbox(api: CoreV1Api) -> None:
    pod, _ = await in_thread(running_pod, api, "app=web")
    pf = await in_thread(open_forward, api, pod, "8080")
    try:
        response = await in_thread(http_get, pf, 8080, "/bytes/1000")
        assert pf.error(8080) is None
    finally:
        pf.close()
    head, _, body = response.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK")
    assert b"Content-Length: 1000" in head
    assert body == bytes_body(1000)


async def test_official_client_sees_refused_port_text(
    sandbox: SandboxCluster, api: CoreV1Api
) -> None:
    pod, _uid = await in_thread(running_pod, api, "app=echo")
    await sandbox.set_backend_refusing("demo", pod, 9000, True)
    pf = await in_thread(open_forward, api, pod, "9000")
    try:
        error = await in_thread(read_error, pf, 9000)
    finally:
        pf.close()
    assert error is not None
    # The uid is empty on this path, as a real cluster's kubelet writes it
    # (docs/protocols.md, section 4).
    assert error == (
        f"error forwarding port 9000 to pod {pod}, uid "
        f': failed to connect to localhost:9000 inside namespace of pod "{pod}": '
        "dial tcp 127.0.0.1:9000: connect: connection refused"
    )


async def test_bad_ports_beat_a_missing_pod(sandbox: SandboxCluster) -> None:
    """The API server converts `ports` before it looks the pod up: 400, not 404."""
    ctx = ssl.create_default_context(cafile=str(sandbox.ca_path))
    headers = {"Authorization": f"Bearer {sandbox.tokens.admin}"}
    url = f"{sandbox.url}/api/v1/namespaces/demo/pods/nope/portforward?ports=abc"
    async with (
        aiohttp.ClientSession() as session,
        session.get(url, headers=headers, ssl=ctx) as resp,
    ):
        body = await resp.json()
    assert resp.status == 400
    assert body["reason"] == "BadRequest"
    assert 'parsing "abc": invalid syntax' in body["message"]
