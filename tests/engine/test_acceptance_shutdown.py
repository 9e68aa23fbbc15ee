"""Acceptance: `Manager.shutdown()` with 100 open connections, on the real sandbox.

tests/engine/test_manager.py proves this against a fake kubelet; here every connection is a
real WebSocket through the sandbox's API server to a real echo backend, and the test checks
that the far end (the backend connections the sandbox opened) is closed too.
No timing assertion: the bounds below only keep a broken build from hanging.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket

import pytest

from portfwd.engine.manager import Manager
from portfwd.engine.model import ForwardSpec, ForwardState
from portfwd.sandbox.cluster import SandboxCluster

pytestmark = pytest.mark.timeout(120)

CONNECTIONS = 100


async def test_shutdown_closes_100_real_connections_end_to_end(sandbox: SandboxCluster) -> None:
    manager = Manager(kubeconfig=str(sandbox.kubeconfig_path))
    conns: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
    try:
        svc = await manager.add(ForwardSpec(target="svc/echo", remote_port=80))
        pod = await manager.add(ForwardSpec(target="deploy/echo", remote_port="echo"))
        for fid in (svc, pod):
            assert manager.get(fid).state is ForwardState.ACTIVE, manager.get(fid).reason
        ports = {fid: manager.get(fid).local_port for fid in (svc, pod)}

        for i in range(CONNECTIONS):
            port = ports[svc] if i % 2 == 0 else ports[pod]
            conns.append(await asyncio.open_connection("127.0.0.1", port))
        payloads = [os.urandom(64) + i.to_bytes(2, "big") for i in range(CONNECTIONS)]
        for (_, writer), payload in zip(conns, payloads, strict=True):
            writer.write(payload)
        for (reader, _), payload in zip(conns, payloads, strict=True):
            assert await asyncio.wait_for(reader.readexactly(len(payload)), 20) == payload
        assert manager.connections(svc) + manager.connections(pod) == CONNECTIONS
        assert sandbox.backends.open_connections() >= CONNECTIONS

        await asyncio.wait_for(manager.shutdown(), 30)

        for fid in (svc, pod):
            assert manager.get(fid).state is ForwardState.STOPPED
            assert manager.connections(fid) == 0
            with socket.socket() as probe:
                assert probe.connect_ex(("127.0.0.1", ports[fid])) != 0
        for reader, _ in conns:  # every client sees its connection end
            try:
                data = await asyncio.wait_for(reader.read(), 10)
            except ConnectionResetError:
                data = b""
            assert data == b""
        # ... and the cluster side lets go of every backend connection.
        assert await sandbox.wait_for(
            lambda: sandbox.backends.open_connections() == 0, within=20
        ), sandbox.backends.open_connections()
    finally:
        for _, writer in conns:
            writer.close()
        await asyncio.wait_for(manager.shutdown(), 30)


async def test_shutdown_twice_and_after_stop_is_harmless(sandbox: SandboxCluster) -> None:
    manager = Manager(kubeconfig=str(sandbox.kubeconfig_path))
    try:
        fid = await manager.add(ForwardSpec(target="deploy/echo", remote_port="echo"))
        assert manager.get(fid).state is ForwardState.ACTIVE, manager.get(fid).reason
        port = manager.get(fid).local_port
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"ping")
        assert await asyncio.wait_for(reader.readexactly(4), 20) == b"ping"
        await manager.stop(fid)
        await manager.stop(fid)
        assert manager.get(fid).state is ForwardState.STOPPED
        with contextlib.suppress(ConnectionResetError):
            assert await asyncio.wait_for(reader.read(), 10) == b""
        writer.close()
    finally:
        await asyncio.wait_for(manager.shutdown(), 30)
        await asyncio.wait_for(manager.shutdown(), 30)
