"""After a (simulated) sleep, frozen watches are replaced and the forward re-validated."""

from __future__ import annotations

from pathlib import Path

from portfwd.engine.model import ForwardSpec, ForwardState, LogLevel

from .conftest import ManagerFactory, ProxyFactory, SandboxFactory, echo_once, eventually


async def test_wake_revalidates_a_forward_whose_watch_froze(
    make_sandbox: SandboxFactory,
    make_manager: ManagerFactory,
    make_proxy: ProxyFactory,
    tmp_path: Path,
) -> None:
    sandbox = await make_sandbox()
    proxy, kubeconfig = await make_proxy(sandbox, tmp_path / "kubeconfig")
    mgr = make_manager(kubeconfig=str(kubeconfig), detect_wake=False)
    control = make_manager(kubeconfig=str(sandbox.kubeconfig_path), detect_wake=False)
    fid = await mgr.add(ForwardSpec(target="svc/echo", remote_port="tcp"))
    cid = await control.add(ForwardSpec(target="svc/echo", remote_port="tcp"))
    snap = mgr.get(fid)
    assert snap.state is ForwardState.ACTIVE, snap.reason
    assert control.get(cid).pod == snap.pod  # both chose the same (oldest Ready) pod
    old = snap.pod

    proxy.freeze()  # the laptop sleeps: the watch connections go silent, still open
    await sandbox.delete_pod("demo", old)
    assert await sandbox.wait_for(lambda: sandbox.get_object("pods", "demo", old) is None)
    # A live watch reports the deletion (the control Manager, not behind the proxy) ...
    await eventually(lambda: control.get(cid).pod != old)
    # ... the frozen one cannot: without a wake the forward still points at the deleted pod.
    frozen = mgr.get(fid)
    assert frozen.state is ForwardState.ACTIVE and frozen.pod == old
    assert not any("re-validating" in e.message for e in mgr.logs(fid))

    mgr._on_wake(3600.0)  # what the wake detector calls after a one-hour sleep
    await eventually(
        lambda: mgr.get(fid).state is ForwardState.ACTIVE and mgr.get(fid).pod != old, 15
    )
    new = mgr.get(fid).pod
    assert new in sandbox.pod_names("demo", {"app": "echo"})
    assert any(
        e.level is LogLevel.INFO and e.message.startswith("re-validating: the clock jumped forward")
        for e in mgr.logs(fid)
    )
    assert await echo_once(snap.local_port, b"awake") == b"awake"
