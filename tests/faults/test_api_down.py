"""The API server goes away for 5 s: every forward says so, and recovers by itself."""

from __future__ import annotations

import asyncio

import pytest

from portfwd.engine.model import ForwardSpec, ForwardState

from .conftest import (
    LOOPBACK,
    ManagerFactory,
    SandboxFactory,
    close_writer,
    echo_once,
    eventually,
)


async def line_once(port: int) -> bytes:
    async with asyncio.timeout(15):
        reader, writer = await asyncio.open_connection(LOOPBACK, port)
        try:
            writer.write(b"hello\n")
            return await reader.readline()
        finally:
            await close_writer(writer)


async def http_root(port: int) -> bytes:
    async with asyncio.timeout(15):
        reader, writer = await asyncio.open_connection(LOOPBACK, port)
        try:
            writer.write(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            return await reader.read()
        finally:
            await close_writer(writer)


@pytest.mark.timeout(120)
async def test_api_server_down_for_5_s(
    make_sandbox: SandboxFactory, make_manager: ManagerFactory
) -> None:
    sandbox = await make_sandbox()
    mgr = make_manager(kubeconfig=str(sandbox.kubeconfig_path))
    svc = await mgr.add(ForwardSpec(target="svc/echo", remote_port="tcp"))
    deploy = await mgr.add(ForwardSpec(target="deploy/web", remote_port=8080))
    pod = await mgr.add(ForwardSpec(target="pod/toolbox", remote_port=7000))
    fids = [svc, deploy, pod]
    for fid in fids:
        assert mgr.get(fid).state is ForwardState.ACTIVE, mgr.get(fid).reason
    port = {fid: mgr.get(fid).local_port for fid in fids}

    api_port = sandbox.port
    await sandbox.stop_api()
    try:
        await eventually(
            lambda: all(mgr.get(f).state is ForwardState.RECONNECTING for f in fids), 15
        )
        for fid in fids:
            snap = mgr.get(fid)
            assert "Kubernetes API" in snap.reason, snap.reason
            assert snap.bound, "the port stays bound while reconnecting"
        await asyncio.sleep(5)  # the outage itself (not an assertion)
        for fid in fids:  # still waiting, nobody gave up
            assert mgr.get(fid).state is ForwardState.RECONNECTING, mgr.get(fid).reason
    finally:
        await sandbox.start_api()
    assert sandbox.port == api_port
    # Back without any user action (the informers' backoff is at most a few seconds here).
    await eventually(lambda: all(mgr.get(f).state is ForwardState.ACTIVE for f in fids), 45)
    for fid in fids:
        assert mgr.get(fid).local_port == port[fid]
    assert await echo_once(port[svc], b"ping") == b"ping"
    assert b"HTTP/1.1 200 OK" in await http_root(port[deploy])
    assert await line_once(port[pod]) == b"toolbox hello\n"
