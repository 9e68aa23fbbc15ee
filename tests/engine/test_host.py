"""The engine on a loop thread of its own (engine/host.py): bytes move while the front end's
loop is busy, reads see what a change did, and shutdown closes the listeners."""

from __future__ import annotations

import asyncio
import queue
import socket
import threading

from portfwd.engine.events import ForwardAdded, ForwardRemoved, StatsTick
from portfwd.engine.host import OUTBOX_LIMIT, ThreadedEngine, _Outbox, _Reset
from portfwd.engine.manager import Manager
from portfwd.engine.model import ForwardSnapshot, ForwardSpec, ForwardState, ForwardStats
from portfwd.sandbox.cluster import SandboxCluster


def _refused(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) != 0


async def test_bytes_move_while_the_front_ends_loop_is_blocked(sandbox: SandboxCluster) -> None:
    """A front end whose loop does not come back (a long repaint) does not stop a forward.

    The front end runs on a thread of its own (the sandbox is on this test's loop): it opens
    the engine, adds a forward, hands its port over, then blocks its loop until released."""
    kubeconfig = str(sandbox.kubeconfig_path)
    ports: queue.Queue[int | BaseException] = queue.Queue()
    release = threading.Event()
    seen: list[ForwardSnapshot] = []

    async def front_end() -> None:
        engine = await ThreadedEngine.open(lambda: Manager(kubeconfig=kubeconfig))
        try:
            fid = await engine.add(ForwardSpec(target="svc/echo", remote_port="tcp"))
            snap = engine.get(fid)  # the reply came after the events it caused
            seen.append(snap)
            ports.put(snap.local_port)
            release.wait(60)  # the loop is stuck here: nothing of the front end runs
        finally:
            await engine.shutdown()

    def front_thread() -> None:
        try:
            asyncio.run(front_end())
        except BaseException as exc:
            ports.put(exc)

    thread = threading.Thread(target=front_thread)
    thread.start()
    try:
        port = await asyncio.to_thread(ports.get, True, 30)
        assert isinstance(port, int), port
        assert seen[0].state is ForwardState.ACTIVE, seen[0].reason
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"ping while the screen is busy")
        got = await asyncio.wait_for(reader.readexactly(29), 10)
        writer.close()
        assert got == b"ping while the screen is busy"
        assert not release.is_set()
    finally:
        release.set()
        await asyncio.to_thread(thread.join, 30)
    assert not thread.is_alive()
    assert _refused(port)  # shutdown closed the listener


async def test_the_mirror_follows_and_quitting_closes_the_listeners(
    sandbox: SandboxCluster,
) -> None:
    engine = await ThreadedEngine.open(lambda: Manager(kubeconfig=str(sandbox.kubeconfig_path)))
    try:
        sub = engine.subscribe()
        fid = await engine.add(ForwardSpec(target="svc/echo", remote_port="tcp"))
        assert [s.id for s in engine.snapshot()] == [fid]
        first = await asyncio.wait_for(sub.get(), 10)
        assert isinstance(first, ForwardAdded) and first.snapshot.id == fid
        assert any("targetPort echo" in e.message for e in engine.logs(fid))
        port = engine.get(fid).local_port
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"x")
        await asyncio.wait_for(reader.readexactly(1), 10)
        assert len(engine.open_connections(fid)) == 1
        writer.close()
        await engine.stop(fid)
        assert engine.get(fid).state is ForwardState.STOPPED
        await engine.start(fid)
        port = engine.get(fid).local_port
    finally:
        await asyncio.wait_for(engine.shutdown(), 15)
    assert _refused(port)
    assert not any(t.name == "portfwd-engine" for t in threading.enumerate())


def test_an_outbox_nobody_drains_stays_bounded_and_becomes_one_resync() -> None:
    outbox = _Outbox(lambda items: None)
    snaps: list[ForwardSnapshot] = []
    for i in range(3 * OUTBOX_LIMIT):
        outbox.put(StatsTick(f"f{i % 7}", ForwardStats()), lambda: snaps)
        outbox.put(ForwardRemoved(f"r{i}"), lambda: snaps)
    items = outbox.take()
    assert len(items) <= OUTBOX_LIMIT + 1
    assert isinstance(items[0], _Reset)
    # Stats ticks coalesce: one per forward is pending, the newest.
    ticks = [i for i in items if isinstance(i, StatsTick)]
    assert len(ticks) == len({t.forward_id for t in ticks})


async def test_the_http_log_switch_and_the_pod_log_cross_the_thread(
    sandbox: SandboxCluster,
) -> None:
    engine = await ThreadedEngine.open(lambda: Manager(kubeconfig=str(sandbox.kubeconfig_path)))
    try:
        fid = await engine.add(ForwardSpec(target="svc/echo", remote_port="tcp"))
        await engine.set_http_log(fid, True)
        assert engine.get(fid).spec.http_log  # the mirror has it when the call returns
        page = await engine.pod_log(fid, None, 0, 10)
        assert page.pod == engine.get(fid).pod and page.container == "echo"
        assert any("container echo started" in line for line in page.lines)
    finally:
        await asyncio.wait_for(engine.shutdown(), 15)
