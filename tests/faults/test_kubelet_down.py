"""A node's kubelet stops answering while the API still calls its pods Ready (the node
controller needs ~40 s to notice): port-forwards to those pods fail at the upgrade with the
API server's 500 "error dialing backend". A forward must look past the API's view."""

from __future__ import annotations

from portfwd.engine.model import ForwardSpec, ForwardState, LogLevel
from portfwd.sandbox.cluster import SandboxCluster

from .conftest import (
    FAULT_TOPOLOGY,
    ManagerFactory,
    SandboxFactory,
    echo_once,
    eventually,
)


async def test_a_service_forward_moves_off_an_unreachable_node_without_failing_a_connection(
    make_sandbox: SandboxFactory, make_manager: ManagerFactory
) -> None:
    """v4 (a WebSocket per connection): the first connection meets the dead kubelet at its
    upgrade; nothing reached a pod, so it is held and served by a pod elsewhere."""
    sandbox = await make_sandbox(topology=FAULT_TOPOLOGY)
    mgr = make_manager(kubeconfig=str(sandbox.kubeconfig_path))
    spec = ForwardSpec(target="svc/trio", remote_port=80, namespace="f", protocol="v4")
    fid = await mgr.add(spec)
    snap = mgr.get(fid)
    assert snap.state is ForwardState.ACTIVE, snap.reason
    down = _node_of(sandbox, snap.pod)
    others = [p for p in sandbox.pod_names("f", {"app": "trio"}) if _node_of(sandbox, p) != down]
    assert others, "the trio pods should be spread over both sandbox nodes"
    await sandbox.set_kubelet_reachable(down, False)

    assert await echo_once(snap.local_port, b"still here") == b"still here"
    after = mgr.get(fid)
    assert after.state is ForwardState.ACTIVE and _node_of(sandbox, after.pod) != down
    assert after.stats.errors == 0
    warnings = [e.message for e in mgr.logs(fid) if e.level is LogLevel.WARNING]
    assert any("error dialing backend" in w and "trying pod" in w for w in warnings), warnings


async def test_a_service_forward_leaves_a_node_whose_kubelet_drops_its_session(
    make_sandbox: SandboxFactory, make_manager: ManagerFactory
) -> None:
    """SPDY: the node's kubelet going away drops the pod's session at once; the forward
    hears it, finds that a new session to that pod fails (500 error dialing backend), and
    moves to a pod on the other node before any connection is made."""
    sandbox = await make_sandbox(topology=FAULT_TOPOLOGY)
    mgr = make_manager(kubeconfig=str(sandbox.kubeconfig_path))
    fid = await mgr.add(ForwardSpec(target="svc/trio", remote_port=80, namespace="f"))
    snap = mgr.get(fid)
    assert snap.state is ForwardState.ACTIVE, snap.reason
    down = _node_of(sandbox, snap.pod)
    await sandbox.set_kubelet_reachable(down, False)

    await eventually(lambda: _node_of(sandbox, mgr.get(fid).pod) != down)
    assert await echo_once(snap.local_port, b"still here") == b"still here"
    after = mgr.get(fid)
    assert after.state is ForwardState.ACTIVE and after.stats.errors == 0
    warnings = [e.message for e in mgr.logs(fid) if e.level is LogLevel.WARNING]
    assert any(w.startswith(f"lost the tunnel to pod {snap.pod}") for w in warnings), warnings
    assert any("error dialing backend" in w and "trying pod" in w for w in warnings), warnings


def _node_of(sandbox: SandboxCluster, pod: str) -> str:
    obj = sandbox.get_object("pods", "f", pod)
    assert obj is not None
    return str(obj["spec"]["nodeName"])


async def test_a_pod_forward_waits_for_its_node_and_comes_back(
    make_sandbox: SandboxFactory, make_manager: ManagerFactory
) -> None:
    sandbox = await make_sandbox(topology=FAULT_TOPOLOGY)
    mgr = make_manager(kubeconfig=str(sandbox.kubeconfig_path))
    fid = await mgr.add(ForwardSpec(target="pod/flaky-0", remote_port=9000, namespace="f"))
    snap = mgr.get(fid)
    assert snap.state is ForwardState.ACTIVE, snap.reason
    pod = sandbox.get_object("pods", "f", "flaky-0")
    assert pod is not None
    node = pod["spec"]["nodeName"]
    mgr._forwards[fid].connect_wait = 0.5  # the probe connection gives up quickly

    await sandbox.set_kubelet_reachable(node, False)
    assert await echo_once(snap.local_port, b"x") == b""  # closed after connect_wait
    await eventually(lambda: mgr.get(fid).state is ForwardState.RECONNECTING)
    down = mgr.get(fid)
    assert "error dialing backend" in down.reason and down.attempt >= 1
    assert down.next_retry_at is not None and down.bound == snap.bound

    await sandbox.set_kubelet_reachable(node, True)
    await eventually(lambda: mgr.get(fid).state is ForwardState.ACTIVE, limit=60)
    assert await echo_once(snap.local_port, b"back") == b"back"
