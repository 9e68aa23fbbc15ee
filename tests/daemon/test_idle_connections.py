"""Idle connections of the owner do not lock the owner's own `ls` and `add` out: when the
daemon is full, the connection idle the longest makes room; watching (subscribed) and busy
ones never do."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import pytest

from portfwd.daemon import protocol as proto
from portfwd.daemon.idle import IdlePolicy
from portfwd.daemon.replies import RemoteError
from portfwd.daemon.server import DaemonServer
from portfwd.daemon.sync_client import SyncClient
from portfwd.engine.manager import Manager

from .conftest import Dirs
from .test_protocol import Raw, one_error_then_eof

pytestmark = pytest.mark.timeout(120)

FULL = 4  # the daemon's connection limit in these tests (64 in use)


@contextlib.asynccontextmanager
async def small_daemon(dirs: Dirs) -> AsyncIterator[DaemonServer]:
    manager = Manager(follow=False, detect_wake=False)
    server = DaemonServer(manager, None, dirs.paths, max_clients=FULL)
    await server.start()
    try:
        yield server
    finally:
        await asyncio.wait_for(server.close(), 30)


def ls(dirs: Dirs) -> Any:
    """What `portfwd ls` does (blocking: run in a thread)."""
    client = SyncClient.connect(dirs.paths, client="ls", within=10)
    try:
        return client.request("snapshot")
    finally:
        client.close()


async def served_within(dirs: Dirs, seconds: float) -> Any:
    """`ls` until it is served (a connection counts as idle after a short grace)."""
    async with asyncio.timeout(seconds):
        while True:
            try:
                return await asyncio.to_thread(ls, dirs)
            except RemoteError as exc:
                assert exc.kind == proto.REFUSED, exc
            except OSError:  # refused before its hello was written (closed on arrival)
                pass
            await asyncio.sleep(0.1)


async def test_idle_connections_make_room_for_ls(dirs: Dirs) -> None:
    async with small_daemon(dirs) as server:
        idle = [await Raw.open(server.paths.socket) for _ in range(FULL)]
        try:
            for raw in idle:
                await raw.said_hello()
            assert await served_within(dirs, 20) == []
            # One of them was closed to make room, with a line that says why.
            closed = []
            for raw in idle:
                with contextlib.suppress(TimeoutError, AssertionError, ConnectionError):
                    data = await asyncio.wait_for(raw.rest(reset_is_eof=True), 0.5)
                    closed.append(data)
            assert any(b"idle while the daemon served" in d for d in closed), closed
        finally:
            for raw in idle:
                raw.close()


async def test_watching_connections_are_never_closed_for_room(dirs: Dirs) -> None:
    async with small_daemon(dirs) as server:
        watching = [await Raw.open(server.paths.socket) for _ in range(FULL)]
        try:
            for n, raw in enumerate(watching):
                await raw.said_hello()
                await raw.send(proto.encode({"id": n + 1, "op": "subscribe"}))
                answer = await raw.line()
                assert "ok" in answer, answer
            newcomer = await Raw.open(server.paths.socket)
            try:
                refused = await one_error_then_eof(newcomer, reset_is_eof=True)
            finally:
                newcomer.close()
            assert refused["error"]["type"] == proto.REFUSED
            assert "at most 4 clients" in refused["error"]["message"], refused
            assert server.status()["clients"] == FULL  # every dashboard still there
        finally:
            for raw in watching:
                raw.close()


def test_the_policy_picks_the_longest_idle_past_the_grace() -> None:
    now = [100.0]
    policy: IdlePolicy[str] = IdlePolicy(grace=1.0, clock=lambda: now[0])
    for name in ("a", "b", "c", "d"):
        policy.seen(name)
        now[0] += 1.0
    policy.began("a")  # a request in flight: never closed
    policy.seen("d")  # it just said something
    names = ["a", "b", "c", "d"]
    assert policy.victim(names, watching=lambda n: n == "b") == "c"
    assert policy.victim(["d"], watching=lambda n: False) is None  # within its grace
    policy.ended("a")
    assert policy.victim(names, watching=lambda n: False) == "b"
    policy.left("b")
    assert policy.victim(["a", "c", "d"], watching=lambda n: False) == "c"
