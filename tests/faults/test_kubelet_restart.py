"""A kubelet restart on a node without WebSocket passthrough (node mode A: every node before
1.36). The API server converted the client's WebSocket to SPDY towards the kubelet and keeps
the WebSocket open after that side died: the session goes silent, and each new stream is
accepted and closed with no data. With the default ping interval (30 s) no connection may be
lost: the first one that meets the dead tunnel makes it prove itself (a PING at once), and is
replayed on a fresh session."""

from __future__ import annotations

import asyncio
import os

import pytest

from portfwd.engine.model import ForwardSpec, ForwardState, LogLevel
from portfwd.sandbox.cluster import SandboxCluster

from .conftest import FAULT_TOPOLOGY, ManagerFactory, SandboxFactory, echo_once, eventually

pytestmark = pytest.mark.timeout(120)


def _node_of(sandbox: SandboxCluster, pod: str) -> str:
    obj = sandbox.get_object("pods", "f", pod)
    assert obj is not None
    return str(obj["spec"]["nodeName"])


async def _echo_half_closed(port: int, payload: bytes) -> bytes:
    async with asyncio.timeout(30):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            writer.write(payload)
            writer.write_eof()
            return await reader.read(-1)
        finally:
            writer.close()


@pytest.mark.parametrize("protocol", ["auto", "websocket"])
async def test_a_kubelet_restart_under_a_kept_websocket_loses_no_connection(
    make_sandbox: SandboxFactory, make_manager: ManagerFactory, protocol: str
) -> None:
    sandbox = await make_sandbox(topology=FAULT_TOPOLOGY)
    sandbox.websocket_passthrough = False
    mgr = make_manager(kubeconfig=str(sandbox.kubeconfig_path))  # default ping interval
    spec = ForwardSpec(target="svc/solo", remote_port=9000, namespace="f", protocol=protocol)
    fid = await mgr.add(spec)
    snap = mgr.get(fid)
    assert snap.state is ForwardState.ACTIVE, snap.reason
    assert await echo_once(snap.local_port, b"before") == b"before"
    await eventually(lambda: mgr.get(fid).stats.connections_open == 0)

    await sandbox.restart_kubelet(_node_of(sandbox, snap.pod))

    assert await echo_once(snap.local_port, b"first after") == b"first after"
    payloads = [os.urandom(1000 + i) for i in range(20)]
    got = await asyncio.gather(
        *(echo_once(snap.local_port, p) for p in payloads[:10]),
        *(_echo_half_closed(snap.local_port, p) for p in payloads[10:]),
    )
    assert got == payloads
    after = mgr.get(fid)
    assert after.state is ForwardState.ACTIVE
    assert after.stats.errors == 0
    infos = [e.message for e in mgr.logs(fid) if e.level is LogLevel.INFO]
    assert any(line.startswith("retrying a connection on pod") for line in infos), infos


async def test_a_stream_closed_empty_on_a_live_session_is_an_empty_reply(
    make_sandbox: SandboxFactory, make_manager: ManagerFactory
) -> None:
    """The same sign on a session that answers its PING is what it says: the pod closed the
    connection without a word (here: the backend refuses, and says so)."""
    sandbox = await make_sandbox(topology=FAULT_TOPOLOGY)
    sandbox.websocket_passthrough = False
    mgr = make_manager(kubeconfig=str(sandbox.kubeconfig_path))
    spec = ForwardSpec(target="pod/flaky-0", remote_port=9000, namespace="f")
    fid = await mgr.add(spec)
    snap = mgr.get(fid)
    assert snap.state is ForwardState.ACTIVE, snap.reason
    await sandbox.set_backend_refusing("f", "flaky-0", 9000)
    assert await echo_once(snap.local_port, b"x") == b""
    assert mgr.tunnels.sessions_opened == 1  # the session was not replaced
    warnings = [e.message for e in mgr.logs(fid) if e.level is LogLevel.WARNING]
    assert any("connect: connection refused" in w for w in warnings), warnings
