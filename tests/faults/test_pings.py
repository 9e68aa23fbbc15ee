"""WebSocket pings keep an idle tunnel alive through a proxy that cuts idle connections."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

import pytest

from portfwd.engine.model import ForwardSpec, ForwardState

from .conftest import LOOPBACK, ManagerFactory, ProxyFactory, SandboxFactory, close_writer

IDLE = 3.0  # the client's idle time: three of the proxy's idle timeouts


@pytest.mark.timeout(60)
@pytest.mark.parametrize("ping_interval", [0.3, 0.0], ids=["pings", "no-pings"])
async def test_idle_connection_through_idle_timeout_proxy(
    make_sandbox: SandboxFactory,
    make_manager: ManagerFactory,
    make_proxy: ProxyFactory,
    tmp_path: Path,
    ping_interval: float,
) -> None:
    sandbox = await make_sandbox(bookmark_interval=0.3)
    _, kubeconfig = await make_proxy(sandbox, tmp_path / "kubeconfig", idle_timeout=1.0)
    mgr = make_manager(kubeconfig=str(kubeconfig), ping_interval=ping_interval)
    fid = await mgr.add(ForwardSpec(target="svc/echo", remote_port="tcp"))
    snap = mgr.get(fid)
    assert snap.state is ForwardState.ACTIVE, snap.reason
    reader, writer = await asyncio.open_connection(LOOPBACK, snap.local_port)
    try:
        async with asyncio.timeout(10):
            writer.write(b"first")
            assert await reader.readexactly(5) == b"first"
        if ping_interval:
            await asyncio.sleep(IDLE)  # idle, as a user between two queries
            async with asyncio.timeout(10):
                writer.write(b"second")
                assert await reader.readexactly(6) == b"second"
        else:
            # Nothing crosses the tunnel: the proxy cuts it and the client sees the end.
            async with asyncio.timeout(IDLE + 10):
                with contextlib.suppress(ConnectionResetError):
                    assert await reader.read() == b""
    finally:
        await close_writer(writer)
