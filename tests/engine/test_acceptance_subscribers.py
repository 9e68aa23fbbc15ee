"""Acceptance: "a slow or vanished subscriber never blocks a forward" (issue 2 §6), on the real
Manager and the sandbox rather than on the bus alone.

A subscriber that never reads (a UI that hung) and one that is abandoned without close()
(a UI that went away) sit on the engine while forwards start, move bytes, stop and shut down.
"""

from __future__ import annotations

import asyncio
import gc
import os

import pytest

from portfwd.engine.events import Lagged
from portfwd.engine.manager import Manager
from portfwd.engine.model import ForwardSpec, ForwardState
from portfwd.sandbox.cluster import SandboxCluster

pytestmark = pytest.mark.timeout(90)


async def test_stuck_and_abandoned_subscribers_do_not_block_forwards(
    sandbox: SandboxCluster,
) -> None:
    manager = Manager(kubeconfig=str(sandbox.kubeconfig_path))
    stuck = manager.subscribe(maxsize=2)  # never read
    abandoned = manager.subscribe(maxsize=2)
    del abandoned  # dropped without close()
    gc.collect()
    watcher = manager.subscribe(maxsize=100_000)  # a healthy subscriber alongside
    try:
        fids = [await manager.add(ForwardSpec(target="svc/echo", remote_port=80)) for _ in range(5)]
        assert all(manager.get(f).state is ForwardState.ACTIVE for f in fids)
        for fid in fids:
            port = manager.get(fid).local_port
            for _ in range(10):  # every connection logs lines and moves counters: many events
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
                payload = os.urandom(2048)
                writer.write(payload)
                assert await asyncio.wait_for(reader.readexactly(2048), 20) == payload
                writer.close()
        for fid in fids:
            await manager.stop(fid)
            assert manager.get(fid).state is ForwardState.STOPPED
        assert stuck.qsize() <= 2 and stuck.dropped > 0
        # The stuck one, when it finally reads, is told it lagged (then re-reads the snapshot).
        drained = [stuck.get_nowait(), stuck.get_nowait(), stuck.get_nowait()]
        assert Lagged() in drained
        # The healthy one saw the whole story of every forward.
        events = []
        while (event := watcher.get_nowait()) is not None:
            events.append(event)
        assert not any(isinstance(e, Lagged) for e in events)
        assert len(events) > 2 * len(fids)
    finally:
        await asyncio.wait_for(manager.shutdown(), 30)
