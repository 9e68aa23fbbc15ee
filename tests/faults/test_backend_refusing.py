"""A backend that refuses connections: the kubelet's text reaches the forward's log."""

from __future__ import annotations

import asyncio
import contextlib

from portfwd.engine.model import ForwardSpec, ForwardState, LogLevel

from .conftest import (
    FAULT_TOPOLOGY,
    LOOPBACK,
    ManagerFactory,
    SandboxFactory,
    echo_once,
    eventually,
)


async def test_refusing_backend_then_back(
    make_sandbox: SandboxFactory, make_manager: ManagerFactory
) -> None:
    sandbox = await make_sandbox(topology=FAULT_TOPOLOGY)
    mgr = make_manager(kubeconfig=str(sandbox.kubeconfig_path))
    fid = await mgr.add(ForwardSpec(target="svc/solo", remote_port="echo", namespace="f"))
    snap = mgr.get(fid)
    assert snap.state is ForwardState.ACTIVE, snap.reason
    assert await echo_once(snap.local_port, b"before") == b"before"

    await sandbox.set_backend_refusing("f", snap.pod, 9000)
    async with asyncio.timeout(10):
        reader, writer = await asyncio.open_connection(LOOPBACK, snap.local_port)
        writer.write(b"refused?")
        with contextlib.suppress(ConnectionResetError):  # the client sees the end
            assert await reader.read() == b""
        writer.close()
    await eventually(lambda: mgr.get(fid).stats.errors == 1)
    warnings = [e.message for e in mgr.logs(fid) if e.level is LogLevel.WARNING]
    assert len(warnings) == 1, warnings
    assert warnings[0].startswith(
        f"an error occurred forwarding {snap.local_port} -> 9000: error forwarding port 9000"
        f" to pod {snap.pod}, uid "
    )
    assert "connect: connection refused" in warnings[0]
    assert mgr.get(fid).state is ForwardState.ACTIVE  # a backend problem, not the forward's
    assert mgr.get(fid).pod == snap.pod

    await sandbox.set_backend_refusing("f", snap.pod, 9000, refusing=False)
    assert await echo_once(snap.local_port, b"after") == b"after"
    assert mgr.get(fid).state is ForwardState.ACTIVE
