"""The sandbox's port named `https` serves TLS, as its name promises (issue 12).

Through a real forward (svc/api 443 -> the pod's port `https`): a TLS client that trusts only
the sandbox's CA completes the handshake for `localhost` and gets the pod's HTTP answer; the
same pod's plain `metrics` port still speaks plain HTTP.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl

import pytest

from portfwd.engine.manager import Manager
from portfwd.engine.model import ForwardSpec, ForwardState
from portfwd.sandbox.cluster import SandboxCluster

pytestmark = pytest.mark.timeout(60)


async def _active(manager: Manager, fid: str) -> int:
    """Its local port, once the forward is active (waits on the engine's events)."""
    events = manager.subscribe()
    try:
        async with asyncio.timeout(30):
            if manager.get(fid).state is not ForwardState.ACTIVE:
                async for _ in events:
                    if manager.get(fid).state is ForwardState.ACTIVE:
                        break
    finally:
        events.close()
    return manager.get(fid).local_port


async def _get(port: int, tls: ssl.SSLContext | None) -> bytes:
    reader, writer = await asyncio.open_connection(
        "127.0.0.1", port, ssl=tls, server_hostname="localhost" if tls else None
    )
    try:
        writer.write(b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        await writer.drain()
        return await asyncio.wait_for(reader.read(), 20)
    finally:
        writer.close()
        with contextlib.suppress(OSError, ssl.SSLError):
            await writer.wait_closed()


async def test_the_port_named_https_speaks_tls_with_the_sandbox_ca(
    sandbox: SandboxCluster,
) -> None:
    manager = Manager(kubeconfig=str(sandbox.kubeconfig_path), detect_wake=False)
    try:
        https = await manager.add(ForwardSpec("svc/api", 443, namespace="demo"))
        metrics = await manager.add(ForwardSpec("svc/api", 9090, namespace="demo"))
        tls = ssl.create_default_context(cafile=str(sandbox.ca_path))
        answer = await _get(await _active(manager, https), tls)
        assert answer.startswith(b"HTTP/1.1 200 OK") and b"hello from api-" in answer
        plain = await _get(await _active(manager, metrics), None)
        assert plain.startswith(b"HTTP/1.1 200 OK")
    finally:
        await asyncio.wait_for(manager.shutdown(), 10)
