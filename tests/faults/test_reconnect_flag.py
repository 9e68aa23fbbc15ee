"""reconnect=False behaves as kubectl: the first failure ends the forward."""

from __future__ import annotations

import asyncio

import pytest

from portfwd.engine.model import ForwardSpec, ForwardState

from .conftest import LOOPBACK, ManagerFactory, SandboxFactory, drain, wait_state


async def test_set_reconnect_off_while_reconnecting_gives_up(
    make_sandbox: SandboxFactory, make_manager: ManagerFactory
) -> None:
    sandbox = await make_sandbox()
    mgr = make_manager(kubeconfig=str(sandbox.kubeconfig_path))
    sub = mgr.subscribe()
    fid = await mgr.add(ForwardSpec(target="svc/echo", remote_port="tcp"))
    port = mgr.get(fid).local_port
    for pod in sandbox.pod_names("demo", {"app": "echo"}):
        await sandbox.set_pod_ready("demo", pod, False)
    await wait_state(mgr, sub, fid, ForwardState.RECONNECTING)
    assert mgr.get(fid).bound
    drain(sub)
    await mgr.set_reconnect(fid, False)
    await wait_state(mgr, sub, fid, (ForwardState.ERROR, ForwardState.ACTIVE))
    snap = mgr.get(fid)
    assert snap.state is ForwardState.ERROR, snap
    assert "no Ready pod" in snap.reason, snap.reason
    assert snap.bound == ()
    with pytest.raises(ConnectionRefusedError):
        async with asyncio.timeout(10):
            await asyncio.open_connection(LOOPBACK, port)
