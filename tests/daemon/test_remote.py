"""RemoteEngine over the real socket: the engine API, the mirror, several clients, detaching."""

from __future__ import annotations

import asyncio
import os
from dataclasses import replace

import pytest

from portfwd.daemon.client import RemoteEngine
from portfwd.daemon.replies import DaemonGone
from portfwd.engine.events import ForwardAdded, ForwardChanged, Lagged, LogLine
from portfwd.engine.model import ForwardState, LogKind
from portfwd.errors import InputError
from tests.support.wait import eventually

from .conftest import InProcessDaemon

pytestmark = pytest.mark.timeout(120)


async def echo(port: int, payload: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(payload)
        await writer.drain()
        return await asyncio.wait_for(reader.readexactly(len(payload)), 15)
    finally:
        writer.close()


async def attach(daemon: InProcessDaemon) -> RemoteEngine:
    return await RemoteEngine.attach(daemon.paths, client="test")


async def test_add_through_the_daemon_moves_bytes_and_the_mirror_follows(
    daemon: InProcessDaemon,
) -> None:
    remote = await attach(daemon)
    try:
        fid = await remote.add(daemon.spec(name="echo"))
        await eventually(lambda: remote.get(fid).state is ForwardState.ACTIVE)
        snap = remote.get(fid)
        assert snap.spec.name == "echo" and snap.pod.startswith("echo-")
        payload = os.urandom(200_000)
        assert await echo(snap.local_port, payload) == payload
        # Counters reach the mirror through the daemon's stats ticks.
        await eventually(lambda: remote.get(fid).stats.bytes_in >= len(payload))
        assert remote.get(fid).stats.connections_total == 1
        # ... and the log lines, with their kinds.
        kinds = {e.kind for e in remote.logs(fid)}
        assert {LogKind.FORWARDING, LogKind.CONNECTION} <= kinds
        assert daemon.manager.get(fid).stats.bytes_in == remote.get(fid).stats.bytes_in
    finally:
        await remote.shutdown()


async def test_two_clients_see_each_others_changes_live(daemon: InProcessDaemon) -> None:
    first, second = await attach(daemon), await attach(daemon)
    events = second.subscribe()
    try:
        fid = await first.add(daemon.spec(name="shared"))
        seen: list[object] = []
        async with asyncio.timeout(15):
            async for event in events:
                seen.append(event)
                if (
                    isinstance(event, ForwardChanged)
                    and event.snapshot.state is ForwardState.ACTIVE
                ):
                    break
        assert any(isinstance(e, ForwardAdded) for e in seen)
        assert second.get(fid).state is ForwardState.ACTIVE
        await second.stop(fid)
        await eventually(lambda: first.get(fid).state is ForwardState.STOPPED)
        await first.start(fid)
        await eventually(lambda: second.get(fid).state is ForwardState.ACTIVE)
    finally:
        events.close()
        await first.shutdown()
        await second.shutdown()


async def test_detach_leaves_forwards_running_and_a_new_client_finds_them(
    daemon: InProcessDaemon,
) -> None:
    remote = await attach(daemon)
    fid = await remote.add(daemon.spec(name="stays"))
    port = remote.get(fid).local_port
    await remote.shutdown()  # what `q` does in an attached dashboard
    assert daemon.manager.get(fid).state is ForwardState.ACTIVE
    assert await echo(port, b"still there") == b"still there"
    again = await attach(daemon)
    try:
        snap = again.get(fid)
        assert snap.state is ForwardState.ACTIVE and snap.local_port == port
        # The history came with the subscription: the new client sees what happened before.
        assert any(e.kind is LogKind.FORWARDING for e in again.logs(fid))
    finally:
        await again.shutdown()


async def test_engine_errors_arrive_as_the_same_exceptions(daemon: InProcessDaemon) -> None:
    remote = await attach(daemon)
    try:
        await remote.add(daemon.spec(name="one"), start=False)
        with pytest.raises(InputError, match="already used"):
            await remote.add(daemon.spec(name="one"), start=False)
        with pytest.raises(KeyError):
            await remote.stop("nope")
        with pytest.raises(KeyError):
            remote.get("nope")
        assert [s.spec.name for s in remote.snapshot()] == ["one"]  # the connection still works
    finally:
        await remote.shutdown()


async def test_a_view_that_falls_behind_gets_lagged_and_the_mirror_is_right(
    daemon: InProcessDaemon,
) -> None:
    remote = await attach(daemon)
    slow = remote.subscribe(maxsize=2)
    try:
        ids = [await remote.add(daemon.spec(name=f"f{i}"), start=False) for i in range(10)]
        await eventually(lambda: len(remote.snapshot()) == 10)
        got = [slow.get_nowait() for _ in range(3)]
        assert any(isinstance(e, Lagged) for e in got)
        assert [s.id for s in remote.snapshot()] == ids  # the truth, in order
    finally:
        slow.close()
        await remote.shutdown()


async def test_a_daemon_that_goes_away_ends_the_stream_and_fails_requests(
    daemon: InProcessDaemon,
) -> None:
    remote = await attach(daemon)
    events = remote.subscribe()
    try:
        await daemon.server.close()
        async with asyncio.timeout(15):
            async for _ in events:
                pass  # ends: the daemon is gone
        assert remote.lost is not None
        with pytest.raises(DaemonGone):
            await remote.add(daemon.spec(), start=False)
    finally:
        events.close()
        await remote.shutdown()


async def test_log_lines_stream_to_every_client(daemon: InProcessDaemon) -> None:
    remote = await attach(daemon)
    events = remote.subscribe()
    try:
        fid = await remote.add(daemon.spec(name="logged"))
        port = remote.get(fid).local_port
        assert await echo(port, b"x") == b"x"
        async with asyncio.timeout(15):
            async for event in events:
                if isinstance(event, LogLine) and event.entry.kind is LogKind.CONNECTION:
                    assert event.forward_id == fid
                    assert event.entry.message == f"Handling connection for {port}"
                    break
    finally:
        events.close()
        await remote.shutdown()


async def test_update_and_set_reconnect_through_the_daemon(daemon: InProcessDaemon) -> None:
    remote = await attach(daemon)
    try:
        fid = await remote.add(daemon.spec(name="changing"))
        await remote.set_reconnect(fid, False)
        await eventually(lambda: remote.get(fid).spec.reconnect is False)
        spec = replace(remote.get(fid).spec, name="changed")
        await remote.update(fid, spec)
        await eventually(
            lambda: (
                remote.get(fid).spec.name == "changed"
                and remote.get(fid).state is ForwardState.ACTIVE
            )
        )
        infos = await remote.fetch_connections(fid)
        assert infos == [] and remote.open_connections(fid) == []
        await remote.remove(fid)
        await eventually(lambda: not remote.snapshot())
    finally:
        await remote.shutdown()
