"""1,000 reconnect cycles leave no file descriptors and no tasks behind."""

from __future__ import annotations

import asyncio
import os

import pytest

from portfwd.engine.model import ForwardSpec, ForwardState

from .conftest import (
    FAULT_TOPOLOGY,
    ManagerFactory,
    SandboxFactory,
    echo_once,
    eventually,
    wait_state,
)

CYCLES = 1000
ECHO_EVERY = 1  # every cycle also opens, uses and closes a tunnel (WebSocket, pumps)
# Slack: a few descriptors and tasks come and go on their own (an aiohttp keep-alive
# connection of the client pool, a pump finishing its 0.1 s of quiet, the stats ticker, a
# sandbox task between its steps); a leak of one per cycle would be ~1,000 over.
SLACK = 8


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


@pytest.mark.timeout(120)
async def test_reconnect_cycles_leak_nothing(
    make_sandbox: SandboxFactory, make_manager: ManagerFactory
) -> None:
    sandbox = await make_sandbox(topology=FAULT_TOPOLOGY)
    mgr = make_manager(kubeconfig=str(sandbox.kubeconfig_path))
    sub = mgr.subscribe()
    fid = await mgr.add(ForwardSpec(target="pod/flaky-0", remote_port=9000, namespace="f"))
    port = mgr.get(fid).local_port

    async def cycle(i: int) -> None:
        await sandbox.set_pod_ready("f", "flaky-0", False)
        await wait_state(mgr, sub, fid, ForwardState.RECONNECTING)
        await sandbox.set_pod_ready("f", "flaky-0", True)
        await wait_state(mgr, sub, fid, ForwardState.ACTIVE)
        if i % ECHO_EVERY == 0:
            payload = f"cycle {i}".encode()
            assert await echo_once(port, payload) == payload

    for i in range(10):  # warm up: pooled connections, backends, informers
        await cycle(i)
    await asyncio.sleep(0)
    base_fds, base_tasks = open_fds(), len(asyncio.all_tasks())
    before = mgr.get(fid).stats.reconnects

    loop = asyncio.get_running_loop()
    t0 = loop.time()
    for i in range(CYCLES):
        await cycle(i)
    elapsed = loop.time() - t0

    snap = mgr.get(fid)
    assert snap.state is ForwardState.ACTIVE
    assert snap.stats.reconnects - before == CYCLES
    print(
        f"{CYCLES} cycles in {elapsed:.1f} s; fds {base_fds} -> {open_fds()},"
        f" tasks {base_tasks} -> {len(asyncio.all_tasks())}"
    )
    await eventually(
        lambda: open_fds() <= base_fds + SLACK and len(asyncio.all_tasks()) <= base_tasks + SLACK
    )
    assert len(mgr.logs(fid)) <= 1000  # the log stays bounded
