"""Lazy forwards against the sandbox (issue 20 §2): nothing is asked of the API server until
the first connection, which waits for the tunnel and gets its bytes; quiet for `idle_after`
the tunnel closes and the state says idle, port still bound, and the next connection opens it
again; `idle_stop` unbinds. What the cluster saw is counted in the sandbox itself."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest_asyncio

from portfwd.engine.manager import Manager
from portfwd.engine.model import ForwardSpec, ForwardState, LogKind
from portfwd.sandbox.cluster import SandboxCluster
from portfwd.tunnel.pool import TunnelPool
from tests.support.wait import eventually


@pytest_asyncio.fixture
async def manager(sandbox: SandboxCluster) -> AsyncIterator[Manager]:
    # Sessions close at once when nobody holds them, so "the tunnel closed" shows in the sandbox.
    mgr = Manager(kubeconfig=str(sandbox.kubeconfig_path), tunnels=TunnelPool(idle_close=0.01))
    try:
        yield mgr
    finally:
        await asyncio.wait_for(mgr.shutdown(), 10)


async def echo(port: int, data: bytes) -> bytes:
    reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 10)
    try:
        writer.write(data)
        return await asyncio.wait_for(reader.readexactly(len(data)), 20)
    finally:
        writer.close()


def quiet(sandbox: SandboxCluster) -> bool:
    """No tunnel and no watch open in the cluster."""
    return sandbox.open_tunnels == 0 and sandbox.store.watches == 0


async def test_lazy_forward_opens_on_first_use_and_sleeps_when_idle(
    manager: Manager, sandbox: SandboxCluster
) -> None:
    before = sandbox.api_requests
    spec = ForwardSpec(target="svc/echo", remote_port="tcp", lazy=True, idle_after=0.3)
    fid = await manager.add(spec)
    snap = manager.get(fid)
    assert snap.state is ForwardState.IDLE and snap.bound, snap.reason
    assert sandbox.api_requests == before  # bound, and nothing asked of the API server
    assert sandbox.portforward_requests == 0

    # The first connection waits for the tunnel it opens, and gets its bytes.
    assert await echo(snap.local_port, b"first") == b"first"
    assert sandbox.portforward_requests >= 1
    assert manager.get(fid).state in (ForwardState.ACTIVE, ForwardState.IDLE)

    # Quiet for idle_after: idle again, the port still bound, the tunnel and watches gone.
    await eventually(lambda: manager.get(fid).state is ForwardState.IDLE)
    assert manager.get(fid).local_port == snap.local_port
    await eventually(lambda: quiet(sandbox))
    assert any(e.kind is LogKind.IDLE and "tunnel closed" in e.message for e in manager.logs(fid))

    # The next connection opens it again.
    upgrades = sandbox.portforward_requests
    assert await echo(snap.local_port, b"again") == b"again"
    assert sandbox.portforward_requests > upgrades
    await eventually(lambda: manager.get(fid).state is ForwardState.IDLE)
    assert manager.get(fid).stats.reconnects == 0  # waking is not a reconnect


async def test_idle_stop_unbinds_and_nothing_is_asked_while_idle(
    manager: Manager, sandbox: SandboxCluster
) -> None:
    spec = ForwardSpec(
        target="svc/echo", remote_port="tcp", lazy=True, idle_after=0.2, idle_stop=1.5
    )
    fid = await manager.add(spec)
    port = manager.get(fid).local_port
    assert await echo(port, b"x") == b"x"
    await eventually(lambda: manager.get(fid).state is ForwardState.IDLE)
    await eventually(lambda: quiet(sandbox))
    asked = sandbox.api_requests
    # Idle until idle_stop ends it: all that time the API server heard nothing from it.
    await eventually(lambda: manager.get(fid).state is ForwardState.STOPPED)
    assert sandbox.api_requests == asked
    snap = manager.get(fid)
    assert snap.bound == () and "idle_stop" in snap.reason
    assert manager.logs(fid)[-1].message == "stopped: no traffic for 1.5s (idle_stop)"
    try:
        _, writer = await asyncio.open_connection("127.0.0.1", port)
    except ConnectionRefusedError:
        pass  # unbound
    else:
        writer.close()
        raise AssertionError("the port is still bound after idle_stop")


async def test_idle_stop_on_an_eager_forward(manager: Manager, sandbox: SandboxCluster) -> None:
    fid = await manager.add(ForwardSpec(target="svc/echo", remote_port="tcp", idle_stop=0.5))
    snap = manager.get(fid)
    assert snap.state is ForwardState.ACTIVE
    assert await echo(snap.local_port, b"y") == b"y"
    await eventually(lambda: manager.get(fid).state is ForwardState.STOPPED)
    assert manager.get(fid).bound == ()


async def test_first_connection_without_a_ready_pod_is_closed_cleanly(
    manager: Manager, sandbox: SandboxCluster
) -> None:
    for pod in sandbox.pod_names("demo", {"app": "echo"}):
        await sandbox.set_pod_ready("demo", pod, False)
    fid = await manager.add(
        ForwardSpec(target="svc/echo", remote_port="tcp", lazy=True, idle_after=60)
    )
    manager._forwards[fid].connect_wait = 0.5  # the client gives up quickly
    port = manager.get(fid).local_port
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"hello")
    assert await asyncio.wait_for(reader.read(), 20) == b""  # closed after the wait
    writer.close()
    snap = manager.get(fid)
    assert snap.state is ForwardState.RECONNECTING and snap.bound
    assert "Ready" in snap.reason, snap.reason
