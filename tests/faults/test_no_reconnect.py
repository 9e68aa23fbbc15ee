"""`reconnect=False` is kubectl's behaviour: a forward is bound to the pod it started with."""

from __future__ import annotations

import asyncio

import pytest

from portfwd.engine.model import ForwardSpec, ForwardState

from .conftest import LOOPBACK, ManagerFactory, SandboxFactory, eventually


# With reconnect=False (kubectl's behaviour) a svc forward whose pod is deleted goes ERROR,
# unbound, instead of following the Service to its other Ready pod (a regression: it once did).
async def test_no_reconnect_pod_deleted_is_error_not_switch(
    make_sandbox: SandboxFactory, make_manager: ManagerFactory
) -> None:
    sandbox = await make_sandbox()
    mgr = make_manager(kubeconfig=str(sandbox.kubeconfig_path))
    fid = await mgr.add(ForwardSpec(target="svc/echo", remote_port="tcp", reconnect=False))
    snap = mgr.get(fid)
    assert snap.state is ForwardState.ACTIVE, snap.reason
    assert len(sandbox.pod_names("demo", {"app": "echo"})) == 2  # another Ready pod exists
    await sandbox.delete_pod("demo", snap.pod)
    # Wait until it reacted: no longer ACTIVE on the deleted pod (ERROR, or a switch).
    await eventually(
        lambda: mgr.get(fid).state is not ForwardState.ACTIVE or mgr.get(fid).pod != snap.pod
    )
    after = mgr.get(fid)
    assert after.state is ForwardState.ERROR, after
    assert after.bound == ()
    assert after.pod == "", "a forward that is not ACTIVE names no pod"
    # It did not move to the other pod: the reason names the lost one, no line names another.
    assert snap.pod in after.reason, after.reason
    others = set(sandbox.pod_names("demo", {"app": "echo"})) - {snap.pod}
    assert not any(o in e.message for o in others for e in mgr.logs(fid))
    with pytest.raises(ConnectionRefusedError):
        async with asyncio.timeout(10):
            await asyncio.open_connection(LOOPBACK, snap.local_port)
