"""Audit of issue 4: a Service deleted under a forward (README, "Gone targets")."""

from __future__ import annotations

import asyncio

from portfwd.engine.model import ForwardSpec, ForwardState, LogKind

from .conftest import LOOPBACK, ManagerFactory, SandboxFactory, close_writer, wait_state


async def test_deleted_service_is_error_naming_it_and_keeps_the_port(
    make_sandbox: SandboxFactory, make_manager: ManagerFactory
) -> None:
    sandbox = await make_sandbox()
    mgr = make_manager(kubeconfig=str(sandbox.kubeconfig_path))
    sub = mgr.subscribe()
    fid = await mgr.add(ForwardSpec(target="svc/echo", remote_port="tcp"))
    snap = mgr.get(fid)
    assert snap.state is ForwardState.ACTIVE, snap.reason
    await sandbox.delete_object("services", "demo", "echo")
    await wait_state(mgr, sub, fid, ForwardState.ERROR)
    after = mgr.get(fid)
    assert after.reason.startswith("svc/echo "), after.reason
    assert after.reason.endswith("; waiting for it to return"), after.reason
    assert after.bound == snap.bound, "a forward waiting for its target keeps its port"
    # Not a final failure: its kind says the forward waits (headless prints it and goes on).
    assert any(e.kind is LogKind.GONE and "svc/echo" in e.message for e in mgr.logs(fid))
    assert not any(e.kind is LogKind.FAILED for e in mgr.logs(fid))
    # A connection meanwhile is accepted, then ended (no pod to go to), not left hanging.
    async with asyncio.timeout(30):
        reader, writer = await asyncio.open_connection(LOOPBACK, snap.local_port)
        try:
            writer.write(b"ping")
            assert await reader.read() == b""
        finally:
            await close_writer(writer)
    assert mgr.get(fid).state is ForwardState.ERROR
