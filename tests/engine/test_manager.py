"""Manager and Forward against a fake kubelet: states, stop/start races, logs, shutdown."""

from __future__ import annotations

import asyncio
import os
import socket

from portfwd.engine.events import ForwardAdded, ForwardChanged, ForwardRemoved, LogLine, StatsTick
from portfwd.engine.model import ForwardSpec, ForwardState, LogKind, LogLevel
from tests.support.wait import eventually

from .conftest import POD_PORT, Env

SPEC = ForwardSpec(target="svc/echo", remote_port=80)


async def _roundtrip(port: int, payload: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(payload)
    await writer.drain()
    got = await asyncio.wait_for(reader.readexactly(len(payload)), 10)
    writer.close()
    return got


async def test_start_goes_starting_then_active_and_forwards(env: Env) -> None:
    sub = env.manager.subscribe()
    fid = await env.manager.add(SPEC)
    snap = env.manager.get(fid)
    assert snap.state is ForwardState.ACTIVE
    assert snap.pod == "echo-1" and snap.remote_port == POD_PORT
    assert [h for h, _ in snap.bound] == ["127.0.0.1"]
    assert snap.local_port > 0 and snap.started_at is not None
    events = []
    while (event := sub.get_nowait()) is not None:
        events.append(event)
    assert isinstance(events[0], ForwardAdded)
    states = [e.snapshot.state for e in events if isinstance(e, ForwardChanged)]
    assert states == [ForwardState.STARTING, ForwardState.ACTIVE]
    messages = [e.entry.message for e in events if isinstance(e, LogLine)]
    assert "svc/echo port 80 -> pod echo-1 port 9000" in messages
    assert f"Forwarding from 127.0.0.1:{snap.local_port} -> {POD_PORT}" in messages

    payload = os.urandom(100_000)
    assert await _roundtrip(snap.local_port, payload) == payload
    assert await _roundtrip(snap.local_port, b"again") == b"again"
    handled = [e.message for e in env.manager.logs(fid) if e.kind is LogKind.CONNECTION]
    assert handled == [f"Handling connection for {snap.local_port}"] * 2

    def settled() -> bool:
        stats = env.manager.get(fid).stats
        return stats.connections_open == 0 and stats.bytes_in == 100_005

    await eventually(settled)
    stats = env.manager.get(fid).stats
    assert stats.bytes_out == 100_005 and stats.connections_total == 2 and stats.errors == 0
    # Coalesced stats ticks arrive, and they carry the totals.
    tick = None
    async with asyncio.timeout(10):
        while tick is None or tick.stats.bytes_in < 100_005:
            event = await sub.get()
            if isinstance(event, StatsTick):
                tick = event
    assert tick.forward_id == fid


async def test_stop_is_idempotent_and_closes_the_port(env: Env) -> None:
    fid = await env.manager.add(SPEC)
    port = env.manager.get(fid).local_port
    await env.manager.stop(fid)
    await env.manager.stop(fid)
    snap = env.manager.get(fid)
    assert snap.state is ForwardState.STOPPED and snap.bound == ()
    with socket.socket() as probe:
        assert probe.connect_ex(("127.0.0.1", port)) != 0
    assert [e.message for e in env.manager.logs(fid)].count("stopped") == 1


async def test_stop_during_start_is_clean(env: Env) -> None:
    env.resolver.gate = asyncio.Event()
    fid = await env.manager.add(SPEC, start=False)
    starter = asyncio.create_task(env.manager.start(fid))
    await eventually(lambda: bool(env.resolver.calls))
    assert env.manager.get(fid).state is ForwardState.STARTING
    await env.manager.stop(fid)
    snap = await asyncio.wait_for(starter, 5)  # start() returns, it does not raise
    assert snap.state is ForwardState.STOPPED
    assert env.manager.get(fid).bound == ()
    env.resolver.gate.set()
    await asyncio.sleep(0.05)
    assert env.manager.get(fid).state is ForwardState.STOPPED


async def test_resolve_failure_is_error_state_with_reason(env: Env) -> None:
    env.resolver.fail = 'no Ready pod for svc/echo: pod "echo-1" phase Pending'
    fid = await env.manager.add(SPEC)
    snap = env.manager.get(fid)
    assert snap.state is ForwardState.ERROR
    assert snap.reason == env.resolver.fail
    assert env.manager.logs(fid)[-1].level is LogLevel.ERROR
    env.resolver.fail = None
    assert (await env.manager.start(fid)).state is ForwardState.ACTIVE


async def test_port_conflict_is_an_error_before_active(env: Env) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        sub = env.manager.subscribe()
        fid = await env.manager.add(ForwardSpec(target="svc/echo", remote_port=80, local_port=port))
        snap = env.manager.get(fid)
        assert snap.state is ForwardState.ERROR
        assert snap.reason.startswith(f"local port {port} is already in use on 127.0.0.1")
        states = []
        while (event := sub.get_nowait()) is not None:
            if isinstance(event, ForwardChanged):
                states.append(event.snapshot.state)
        assert ForwardState.ACTIVE not in states


async def test_connection_failure_is_a_warning_with_kubelet_text(env: Env) -> None:
    fid = await env.manager.add(SPEC)
    port = env.manager.get(fid).local_port
    env.kubelet.refusing.add(POD_PORT)
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"hello")
    assert await asyncio.wait_for(reader.read(), 10) == b""
    writer.close()

    await eventually(lambda: env.manager.get(fid).stats.errors > 0)
    snap = env.manager.get(fid)
    assert snap.state is ForwardState.ACTIVE  # one failed connection does not stop it
    warning = [e for e in env.manager.logs(fid) if e.level is LogLevel.WARNING][-1]
    assert warning.message.startswith(
        f"an error occurred forwarding {port} -> {POD_PORT}: error forwarding port {POD_PORT}"
        " to pod echo-1, uid : failed to connect"
    )
    env.kubelet.refusing.clear()
    assert await _roundtrip(port, b"ok now") == b"ok now"


async def test_update_rebinds_on_the_new_port(env: Env) -> None:
    fid = await env.manager.add(SPEC)
    old = env.manager.get(fid).local_port
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        new_port = s.getsockname()[1]
    new_spec = ForwardSpec(target="svc/echo", remote_port=80, local_port=new_port)
    await env.manager.update(fid, new_spec)
    snap = env.manager.get(fid)
    assert snap.state is ForwardState.ACTIVE and snap.local_port == new_port != old
    assert await _roundtrip(new_port, b"moved") == b"moved"


async def test_restart_and_remove(env: Env) -> None:
    sub = env.manager.subscribe()
    fid = await env.manager.add(SPEC)
    assert (await env.manager.restart(fid)).state is ForwardState.ACTIVE
    await env.manager.remove(fid)
    assert env.manager.snapshot() == []
    events = []
    while (event := sub.get_nowait()) is not None:
        events.append(event)
    assert events[-1] == ForwardRemoved(fid)


async def test_shutdown_with_100_open_connections_closes_everything(env: Env) -> None:
    fid = await env.manager.add(SPEC)
    port = env.manager.get(fid).local_port
    conns = [await asyncio.open_connection("127.0.0.1", port) for _ in range(100)]
    for _, writer in conns:  # every connection is through to the backend
        writer.write(b"x")
    for reader, _ in conns:
        assert await asyncio.wait_for(reader.readexactly(1), 10) == b"x"
    assert env.manager.connections(fid) == 100
    infos = env.manager.open_connections(fid)
    assert len(infos) == 100
    assert all(i.pod == "echo-1" and i.bytes_in == i.bytes_out == 1 for i in infos)
    assert all(i.peer.startswith("127.0.0.1:") for i in infos)
    assert env.kubelet.open_now == 100
    await asyncio.wait_for(env.manager.shutdown(), 10)
    assert env.manager.connections(fid) == 0
    assert env.manager.get(fid).state is ForwardState.STOPPED
    for reader, _ in conns:  # every client sees its connection end
        try:
            data = await asyncio.wait_for(reader.read(), 5)
        except ConnectionResetError:
            data = b""
        assert data == b""
    with socket.socket() as probe:
        assert probe.connect_ex(("127.0.0.1", port)) != 0
    assert env.pool.closed

    await eventually(lambda: env.kubelet.open_now == 0)  # every WebSocket was closed
    for _, writer in conns:
        writer.close()


async def test_stats_ticker_runs_only_while_counters_change(env: Env) -> None:
    fid = await env.manager.add(SPEC)
    assert await _roundtrip(env.manager.get(fid).local_port, b"tick") == b"tick"
    assert env.manager._ticker is not None  # traffic started it
    await eventually(lambda: env.manager._ticker is None)  # idle: it ended by itself
    assert env.manager.get(fid).stats.bytes_in == 4


async def test_a_name_is_used_once(env: Env) -> None:
    """Scripts find forwards by name (`portfwd stop web`): a second one of that name, or a
    name that is another forward's id, would make that ambiguous."""
    from dataclasses import replace

    import pytest

    from portfwd.errors import InputError

    first = await env.manager.add(replace(SPEC, name="web"), start=False)
    with pytest.raises(InputError, match="'web' is already used by forward"):
        await env.manager.add(replace(SPEC, name="web", local_port=0), start=False)
    other = await env.manager.add(replace(SPEC, name="api"), start=False)
    with pytest.raises(InputError, match="already used"):
        await env.manager.update(other, replace(SPEC, name="web"))
    with pytest.raises(InputError, match="the id of another forward"):
        await env.manager.add(replace(SPEC, name=first), start=False)
    await env.manager.update(first, replace(SPEC, name="web", local_port=0))  # its own name
    assert [s.spec.name for s in env.manager.snapshot()] == ["web", "api"]
