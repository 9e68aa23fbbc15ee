"""A SPDY session dying under its forward: a cut mid-transfer, and 1,000 of them in a row.

The session's connection goes through a FaultProxy that can reset it alone (the watches keep
theirs): its streams must fail cleanly, the forward must notice, open a new session and serve
again, and nothing may leak across cycles."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from portfwd.engine.manager import Manager
from portfwd.engine.model import ForwardSpec, ForwardState, LogLevel

from .conftest import (
    ManagerFactory,
    ProxyFactory,
    SandboxFactory,
    echo_big,
    echo_once,
    eventually,
)
from .test_cycles import SLACK, open_fds

SPDY = ["websocket", "spdy"]


def session_ports(mgr: Manager) -> set[int]:
    return {s.local_port for s in mgr.tunnels.sessions() if s.alive}


@pytest.mark.parametrize("protocol", SPDY)
async def test_a_session_cut_mid_transfer_fails_its_streams_and_the_forward_reconnects(
    make_sandbox: SandboxFactory,
    make_manager: ManagerFactory,
    make_proxy: ProxyFactory,
    tmp_path: Path,
    protocol: str,
) -> None:
    sandbox = await make_sandbox()
    proxy, kubeconfig = await make_proxy(sandbox, tmp_path / "kubeconfig")
    mgr = make_manager(kubeconfig=str(kubeconfig))
    fid = await mgr.add(ForwardSpec(target="svc/echo", remote_port=80, protocol=protocol))
    port = mgr.get(fid).local_port
    ports = session_ports(mgr)
    assert len(ports) == 1

    transfer = asyncio.create_task(echo_big(port, 50 * 1024 * 1024))
    others = [asyncio.create_task(echo_big(port, 20 * 1024 * 1024, seed=i)) for i in range(3)]
    await eventually(lambda: mgr.get(fid).stats.bytes_in > 1024 * 1024)
    assert proxy.cut_from(ports) == 1
    # Every stream on it ends (no hang, no partial bytes passed off as complete).
    results = await asyncio.wait_for(asyncio.gather(transfer, *others, return_exceptions=True), 30)
    assert not any(r is True for r in results), results
    await eventually(lambda: mgr.tunnels.sessions_opened == 2)
    await eventually(lambda: mgr.get(fid).state is ForwardState.ACTIVE)
    assert await echo_once(port, b"after the cut") == b"after the cut"
    warnings = [e.message for e in mgr.logs(fid) if e.level is LogLevel.WARNING]
    lost = [w for w in warnings if w.startswith("lost the tunnel to pod")]
    assert len(lost) == 1 and "4 open connection(s) ended" in lost[0], warnings
    assert session_ports(mgr).isdisjoint(ports)


CYCLES = 1000


@pytest.mark.timeout(240)
async def test_1000_session_cuts_leak_nothing(
    make_sandbox: SandboxFactory,
    make_manager: ManagerFactory,
    make_proxy: ProxyFactory,
    tmp_path: Path,
) -> None:
    sandbox = await make_sandbox()
    proxy, kubeconfig = await make_proxy(sandbox, tmp_path / "kubeconfig")
    mgr = make_manager(kubeconfig=str(kubeconfig))
    fid = await mgr.add(ForwardSpec(target="svc/echo", remote_port=80, protocol="spdy"))
    port = mgr.get(fid).local_port

    async def cycle(i: int) -> None:
        opened = mgr.tunnels.sessions_opened
        assert proxy.cut_from(session_ports(mgr)) == 1
        await eventually(lambda: mgr.tunnels.sessions_opened > opened and session_ports(mgr))
        payload = f"cycle {i}".encode()
        assert await echo_once(port, payload) == payload

    for i in range(10):  # warm up
        await cycle(i)
    await asyncio.sleep(0)
    base_fds, base_tasks = open_fds(), len(asyncio.all_tasks())
    for i in range(CYCLES):
        await cycle(i)
    snap = mgr.get(fid)
    assert snap.state is ForwardState.ACTIVE
    assert mgr.tunnels.sessions_opened == CYCLES + 11
    await eventually(
        lambda: open_fds() <= base_fds + SLACK and len(asyncio.all_tasks()) <= base_tasks + SLACK
    )
    assert len(mgr.tunnels.sessions()) == 1
    assert len(mgr.logs(fid)) <= 1000
