"""The engine against the sandbox cluster: real resolution, real kubelet-side error text."""

from __future__ import annotations

import asyncio

from portfwd.engine.events import ForwardChanged
from portfwd.engine.manager import Manager
from portfwd.engine.model import ForwardSpec, ForwardState, LogLevel
from portfwd.sandbox.cluster import SandboxCluster
from tests.support.wait import eventually


async def test_service_forward_lifecycle(manager: Manager, sandbox: SandboxCluster) -> None:
    sub = manager.subscribe()
    fid = await manager.add(ForwardSpec(target="svc/echo", remote_port="tcp"))
    snap = manager.get(fid)
    assert snap.state is ForwardState.ACTIVE, snap.reason
    assert snap.context == "sandbox" and snap.namespace == "demo"
    assert snap.pod in sandbox.pod_names("demo", {"app": "echo"})
    assert snap.remote_port == 9000
    log = [e.message for e in manager.logs(fid)]
    assert any("targetPort echo" in m for m in log)  # the resolver's decisions are logged
    reader, writer = await asyncio.open_connection("127.0.0.1", snap.local_port)
    writer.write(b"ping")
    assert await asyncio.wait_for(reader.readexactly(4), 10) == b"ping"
    writer.close()
    await manager.stop(fid)
    await manager.stop(fid)
    states = []
    while (event := sub.get_nowait()) is not None:
        if isinstance(event, ForwardChanged):
            states.append(event.snapshot.state)
    assert states == [ForwardState.STARTING, ForwardState.ACTIVE, ForwardState.STOPPED]


async def test_refusing_backend_text_in_forward_log(
    manager: Manager, sandbox: SandboxCluster
) -> None:
    fid = await manager.add(ForwardSpec(target="pod/toolbox", remote_port=7000))
    snap = manager.get(fid)
    assert snap.state is ForwardState.ACTIVE, snap.reason
    await sandbox.set_backend_refusing("demo", "toolbox", 7000)
    reader, writer = await asyncio.open_connection("127.0.0.1", snap.local_port)
    writer.write(b"hello\n")
    assert await asyncio.wait_for(reader.read(), 10) == b""
    writer.close()
    await eventually(lambda: manager.get(fid).stats.errors == 1)
    (warning,) = [e for e in manager.logs(fid) if e.level is LogLevel.WARNING]
    assert warning.message.startswith(
        f"an error occurred forwarding {snap.local_port} -> 7000: error forwarding port 7000"
        " to pod toolbox, uid "
    )
    assert "connect: connection refused" in warning.message
    assert manager.get(fid).state is ForwardState.ACTIVE
    await sandbox.set_backend_refusing("demo", "toolbox", 7000, refusing=False)
    reader, writer = await asyncio.open_connection("127.0.0.1", snap.local_port)
    writer.write(b"hello\n")
    assert await asyncio.wait_for(reader.readline(), 10) == b"toolbox hello\n"
    writer.close()


async def test_forbidden_port_forward_is_an_error_before_active(sandbox: SandboxCluster) -> None:
    mgr = Manager(kubeconfig=str(sandbox.kubeconfig_path))
    try:
        fid = await mgr.add(
            ForwardSpec(target="svc/echo", remote_port=80, context="sandbox-viewer")
        )
        snap = mgr.get(fid)
        assert snap.state is ForwardState.ERROR
        # Every protocol was tried (the viewer may do neither verb) and the reason says what
        # each needs and what the server said.
        assert snap.reason.startswith('user "viewer" may not port-forward to pod echo-')
        assert (
            'in namespace "demo" (403 Forbidden, context "sandbox-viewer"): refused over SPDY '
            "over WebSocket (cannot get), SPDY (cannot create) and v4.channel.k8s.io (cannot "
            'get); WebSocket upgrades need "get" and "create" on pods/portforward, SPDY needs '
            '"create"'
        ) in snap.reason
        assert snap.bound == ()
    finally:
        await asyncio.wait_for(mgr.shutdown(), 10)
