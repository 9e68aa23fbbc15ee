"""A pod deleted under a forward: transfers in flight end cleanly, the forward follows."""

from __future__ import annotations

import asyncio

from portfwd.engine.model import ForwardSpec, ForwardState, LogLevel
from portfwd.sandbox.backends import bytes_body

from .conftest import (
    FAULT_TOPOLOGY,
    LOOPBACK,
    ManagerFactory,
    SandboxFactory,
    close_writer,
    echo_once,
    eventually,
    wait_state,
)

SIZE = 50 * 1024 * 1024


async def http_get(port: int, path: str) -> tuple[bytes, bytes]:
    async with asyncio.timeout(30):
        reader, writer = await asyncio.open_connection(LOOPBACK, port)
        try:
            writer.write(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
            head = await reader.readuntil(b"\r\n\r\n")
            return head, await reader.read()
        finally:
            await close_writer(writer)


async def test_pod_deleted_during_transfer(
    make_sandbox: SandboxFactory, make_manager: ManagerFactory
) -> None:
    sandbox = await make_sandbox(topology=FAULT_TOPOLOGY)
    mgr = make_manager(kubeconfig=str(sandbox.kubeconfig_path))
    sub = mgr.subscribe()
    fid = await mgr.add(ForwardSpec(target="svc/solo", remote_port="http", namespace="f"))
    snap = mgr.get(fid)
    assert snap.state is ForwardState.ACTIVE, snap.reason
    old = snap.pod

    body = bytearray()
    reset = False
    async with asyncio.timeout(30):  # no hang: the cut transfer ends, bounded
        reader, writer = await asyncio.open_connection(LOOPBACK, snap.local_port)
        try:
            writer.write(f"GET /bytes/{SIZE} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
            head = await reader.readuntil(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 200 OK")
            assert f"Content-Length: {SIZE}".encode() in head
            while len(body) < 1024 * 1024:
                chunk = await reader.read(64 * 1024)
                assert chunk
                body += chunk
            await sandbox.delete_pod("f", old)
            try:
                while chunk := await reader.read(256 * 1024):
                    body += chunk
            except ConnectionResetError:
                reset = True
        finally:
            await close_writer(writer)
    assert len(body) < SIZE, "the transfer survived its pod's deletion"
    assert body == bytes_body(len(body))  # what did arrive is intact, in order
    print(f"received {len(body)} of {SIZE} bytes; reset={reset}")

    # The forward's log says what happened to the pod in use (the kubelet only closes the
    # stream of a dying pod, with no error text, so the line is about the pod).
    await eventually(
        lambda: any(
            e.level is LogLevel.WARNING and old in e.message and "terminating" in e.message
            for e in mgr.logs(fid)
        )
    )
    # No user action: a replacement pod turns Ready and new connections go to it.
    await eventually(
        lambda: mgr.get(fid).state is ForwardState.ACTIVE and mgr.get(fid).pod != old, 30
    )
    await wait_state(mgr, sub, fid, ForwardState.ACTIVE)
    new = mgr.get(fid).pod
    assert new in sandbox.pod_names("f", {"app": "solo"})
    head, data = await http_get(snap.local_port, "/bytes/100000")
    assert head.startswith(b"HTTP/1.1 200 OK") and f"X-Sandbox-Pod: {new}".encode() in head
    assert data == bytes_body(100000)
    assert any(
        e.level is LogLevel.INFO and f"switched to pod {new}" in e.message for e in mgr.logs(fid)
    )


async def test_pod_target_deleted_is_error_naming_the_pod(
    make_sandbox: SandboxFactory, make_manager: ManagerFactory
) -> None:
    sandbox = await make_sandbox()
    mgr = make_manager(kubeconfig=str(sandbox.kubeconfig_path))
    sub = mgr.subscribe()
    fid = await mgr.add(ForwardSpec(target="pod/toolbox", remote_port=7000))
    assert mgr.get(fid).state is ForwardState.ACTIVE
    await sandbox.delete_pod("demo", "toolbox")
    await wait_state(mgr, sub, fid, ForwardState.ERROR)
    snap = mgr.get(fid)
    assert "toolbox" in snap.reason and "deleted" in snap.reason, snap.reason
    assert snap.bound, "a pod target waiting for its pod keeps its port"


async def test_statefulset_pod_returns_and_forward_is_active_again(
    make_sandbox: SandboxFactory, make_manager: ManagerFactory
) -> None:
    sandbox = await make_sandbox()
    mgr = make_manager(kubeconfig=str(sandbox.kubeconfig_path))
    sub = mgr.subscribe()
    fid = await mgr.add(ForwardSpec(target="pod/postgres-0", remote_port=5432, namespace="data"))
    snap = mgr.get(fid)
    assert snap.state is ForwardState.ACTIVE, snap.reason
    port = snap.local_port
    assert await echo_once(port, b"hi\n", limit=10) != b""
    await sandbox.delete_pod("data", "postgres-0")
    await wait_state(mgr, sub, fid, ForwardState.ERROR)
    assert "postgres-0" in mgr.get(fid).reason, mgr.get(fid).reason
    await wait_state(mgr, sub, fid, ForwardState.ACTIVE, limit=30)
    snap = mgr.get(fid)
    assert snap.pod == "postgres-0" and snap.local_port == port
    async with asyncio.timeout(10):
        reader, writer = await asyncio.open_connection(LOOPBACK, port)
        try:
            writer.write(b"hello\n")
            assert await reader.readline() == b"postgres-0 hello\n"
        finally:
            await close_writer(writer)
    assert any("active again: pod postgres-0" in e.message for e in mgr.logs(fid))
