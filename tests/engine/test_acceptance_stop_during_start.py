"""Acceptance: "stop during start is clean" (issue 2 §6) on the real sandbox.

test_manager.py holds a fake resolver at a gate; here the stop lands at every step of a real
start (kubeconfig, API requests, resolution, bind) by letting the start run for 0, 1, 2, ...
loop turns before stopping. Whatever the moment, the forward ends stopped, nothing listens on
its port, and the same forward starts normally afterwards.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket

import pytest

from portfwd.engine.manager import Manager
from portfwd.engine.model import ForwardSpec, ForwardState
from portfwd.sandbox.cluster import SandboxCluster
from tests.support.ports import reserved_port

pytestmark = pytest.mark.timeout(120)


def _listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


async def test_stop_at_every_moment_of_a_real_start(sandbox: SandboxCluster) -> None:
    manager = Manager(kubeconfig=str(sandbox.kubeconfig_path))
    port = reserved_port()
    try:
        fid = await manager.add(
            ForwardSpec(target="svc/echo", remote_port=80, local_port=port), start=False
        )
        reached_active = False
        for turns in range(5000):  # one more loop turn each time
            start = asyncio.create_task(manager.start(fid))
            for _ in range(turns):
                await asyncio.sleep(0)
            if start.done() and manager.get(fid).state is ForwardState.ACTIVE:
                reached_active = True
            await asyncio.wait_for(manager.stop(fid), 20)
            with contextlib.suppress(Exception):  # a start cut short may report that
                await asyncio.wait_for(start, 20)
            snap = manager.get(fid)
            assert snap.state is ForwardState.STOPPED, (turns, snap.state, snap.reason)
            assert not _listening(port), turns
            assert manager.connections(fid) == 0
            if reached_active:
                break
        assert reached_active, "no start completed within the turns tried: widen the range"
        # After all that, the forward still starts and carries bytes.
        assert (await manager.start(fid)).state is ForwardState.ACTIVE
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"still fine")
        assert await asyncio.wait_for(reader.readexactly(10), 20) == b"still fine"
        writer.close()
    finally:
        await asyncio.wait_for(manager.shutdown(), 30)
