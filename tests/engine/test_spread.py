"""`--spread`: a forward that behaves like its Service, against the sandbox cluster."""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter

from portfwd.engine.manager import Manager
from portfwd.engine.model import ForwardSpec, ForwardState, LogLevel
from portfwd.engine.routing import Router
from portfwd.kube.objects import ObjectMeta, Pod
from portfwd.kube.resolve import Resolution
from portfwd.sandbox.cluster import SandboxCluster
from tests.support.wait import eventually


async def _who(port: int) -> str:
    """The pod that answered GET / on a new connection (the sandbox's page names it)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(b"GET / HTTP/1.1\r\nHost: web\r\nConnection: close\r\n\r\n")
        data = await asyncio.wait_for(reader.read(), 10)
    finally:
        writer.close()
    assert data.startswith(b"HTTP/1.1 200"), data[:80]
    return data.rsplit(b"hello from ", 1)[1].strip().decode()


def _spread_line(manager: Manager, fid: str, count: int) -> bool:
    return any(
        e.message.startswith(f"spreading new connections over {count} pod(s)")
        for e in manager.logs(fid)
    )


async def test_connections_reach_every_ready_pod(manager: Manager, sandbox: SandboxCluster) -> None:
    fid = await manager.add(ForwardSpec(target="svc/web", remote_port=80, spread=True))
    snap = manager.get(fid)
    assert snap.state is ForwardState.ACTIVE, snap.reason
    ready = {
        p
        for p in sandbox.pod_names("demo", {"app": "web"})
        if sandbox._pod_ready(sandbox.get_object("pods", "demo", p) or {})
    }
    assert len(ready) == 2  # the demo's third web pod is never Ready
    await eventually(lambda: _spread_line(manager, fid, 2))
    seen = Counter([await _who(snap.local_port) for _ in range(100)])
    assert set(seen) == ready  # every Ready pod, and only those
    assert min(seen.values()) >= 40  # spread, not one pod with a stray connection

    # A pod made not Ready gets no new connection.
    out = sorted(ready)[0]
    await sandbox.set_pod_ready("demo", out, False)
    await eventually(lambda: _spread_line(manager, fid, 1))
    after = {await _who(snap.local_port) for _ in range(20)}
    assert after == ready - {out}


async def test_default_forward_stays_on_one_pod(manager: Manager) -> None:
    fid = await manager.add(ForwardSpec(target="svc/web", remote_port=80))
    port = manager.get(fid).local_port
    assert len({await _who(port) for _ in range(10)}) == 1


async def test_rolling_restart_loses_no_request(manager: Manager, sandbox: SandboxCluster) -> None:
    # Pods as well-behaved servers: a terminating pod finishes its open connections within
    # its grace period (the sandbox's default drops them at once, as a crash would).
    sandbox.terminating_keeps_connections = True
    sandbox.termination_grace = 3.0
    fid = await manager.add(ForwardSpec(target="svc/echo", remote_port="tcp", spread=True))
    port = manager.get(fid).local_port
    stop = asyncio.Event()
    done: list[int] = []
    failed: list[str] = []

    async def client(n: int) -> None:
        i = 0
        while not stop.is_set():
            payload = f"{n}-{i}-".encode() * 50
            try:
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
                try:
                    writer.write(payload)
                    got = await asyncio.wait_for(reader.readexactly(len(payload)), 10)
                finally:
                    writer.close()
                    with contextlib.suppress(OSError):
                        await writer.wait_closed()
            except (OSError, asyncio.IncompleteReadError, TimeoutError) as exc:
                failed.append(repr(exc))
                continue
            if got != payload:
                failed.append("bytes differ")
            done.append(1)
            i += 1

    loops = [asyncio.create_task(client(n)) for n in range(4)]
    try:
        await eventually(lambda: len(done) >= 20)
        before = set(sandbox.pod_names("demo", {"app": "echo"}))
        await sandbox.rollout_restart("demo", "echo")
        assert await sandbox.wait_rollout("demo", "echo", within=60)
        after = set(sandbox.pod_names("demo", {"app": "echo"}))
        assert not before & after  # every pod was replaced while the clients ran
        count = len(done)
        await eventually(lambda: len(done) >= count + 20)  # and the new pods serve
    finally:
        stop.set()
        await asyncio.wait_for(asyncio.gather(*loops), 15)
    warnings = [e.message for e in manager.logs(fid) if e.level >= LogLevel.WARNING]
    assert failed == [], warnings
    assert manager.get(fid).stats.errors == 0, warnings


def _route(name: str) -> Resolution:
    pod = Pod(meta=ObjectMeta(name=name, namespace="demo", uid=f"uid-{name}"), phase="Running")
    return Resolution(pod=pod, container_port=80, port_name="", protocol="TCP", decisions=())


async def test_pick_least_connections_ties_in_turn() -> None:
    router = Router()
    a, b, c = _route("a"), _route("b"), _route("c")
    router.use("demo", a)
    router.use_spread("demo", [a, b, c])
    picked = [router.pick({}) for _ in range(6)]
    assert {r.pod.name for r in picked[:3]} == {"a", "b", "c"}  # ties: each in turn
    assert [r.pod.name for r in picked[:3]] == [r.pod.name for r in picked[3:]]
    for _ in range(5):  # long-lived connections on a and b: new ones go to c
        assert router.pick({"a": 4, "b": 2, "c": 1}).pod.name == "c"
    router.use_spread("demo", [a, b])  # c is no longer Ready: it gets nothing new
    assert {router.pick({"a": 0, "b": 0}).pod.name for _ in range(4)} == {"a", "b"}
    await router.close()
