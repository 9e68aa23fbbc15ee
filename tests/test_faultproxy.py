"""The fault-injection proxy: bytes intact, freeze, cut, refusing, idle timeout, and the
official path (portfwd's Manager through the proxy to the sandbox, TLS untouched)."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
import yaml

from portfwd.engine.manager import Manager
from portfwd.engine.model import ForwardSpec, ForwardState
from portfwd.sandbox.cluster import SandboxCluster
from tests.support.wait import eventually

from .faultproxy import FaultProxy, kubeconfig_via

LIMIT = 10.0  # generous bound for anything that should happen "soon"


class EchoServer:
    """A loopback echo server that owns its connection tasks."""

    def __init__(self) -> None:
        self.port = 0
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.resets = 0

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = int(self._server.sockets[0].getsockname()[1])

    def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.get_running_loop().create_task(self._echo(reader, writer))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _echo(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
            writer.write_eof()
        except ConnectionResetError:
            self.resets += 1
        finally:
            writer.close()

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for t in list(self._tasks):
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()


@pytest_asyncio.fixture
async def echo() -> AsyncIterator[EchoServer]:
    server = EchoServer()
    await server.start()
    try:
        yield server
    finally:
        await asyncio.wait_for(server.stop(), LIMIT)


@pytest_asyncio.fixture
async def proxy(echo: EchoServer) -> AsyncIterator[FaultProxy]:
    p = FaultProxy("127.0.0.1", echo.port)
    await p.start()
    try:
        yield p
    finally:
        await asyncio.wait_for(p.stop(), LIMIT)


@contextlib.asynccontextmanager
async def connect(port: int) -> AsyncIterator[tuple[asyncio.StreamReader, asyncio.StreamWriter]]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        yield reader, writer
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()


async def round_trip(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, data: bytes
) -> bytes:
    writer.write(data)
    await writer.drain()
    return await asyncio.wait_for(reader.readexactly(len(data)), LIMIT)


async def test_bytes_pass_intact_both_ways(proxy: FaultProxy) -> None:
    payload = os.urandom(3 * 1024 * 1024 + 7)
    async with connect(proxy.port) as (reader, writer):

        async def send() -> None:
            writer.write(payload)
            await writer.drain()
            writer.write_eof()

        sender = asyncio.create_task(send())
        got = await asyncio.wait_for(reader.read(), LIMIT)  # until the echoed EOF
        await sender
        assert got == payload
    assert proxy.accepted == 1
    await eventually(lambda: proxy.connections == 0)


async def test_freeze_stops_old_connections_new_ones_work(proxy: FaultProxy) -> None:
    async with connect(proxy.port) as (r1, w1):
        assert await round_trip(r1, w1, b"before") == b"before"
        proxy.freeze()
        w1.write(b"frozen")
        await w1.drain()
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(r1.readexactly(6), 0.5)
        assert proxy.connections == 1  # still open, just silent
        async with connect(proxy.port) as (r2, w2):
            assert await round_trip(r2, w2, b"fresh") == b"fresh"
        proxy.thaw()
        assert await asyncio.wait_for(r1.readexactly(6), LIMIT) == b"frozen"


async def test_freeze_holds_back_eof(proxy: FaultProxy, echo: EchoServer) -> None:
    async with connect(proxy.port) as (reader, writer):
        assert await round_trip(reader, writer, b"x") == b"x"
        proxy.freeze()
        writer.write_eof()
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(reader.read(), 0.5)
        proxy.thaw()
        assert await asyncio.wait_for(reader.read(), LIMIT) == b""


async def test_cut_resets_existing_connections(proxy: FaultProxy, echo: EchoServer) -> None:
    async with connect(proxy.port) as (reader, writer):
        assert await round_trip(reader, writer, b"hello") == b"hello"
        proxy.cut()
        with pytest.raises(ConnectionResetError):
            await asyncio.wait_for(reader.read(), LIMIT)
    await eventually(lambda: echo.resets == 1)  # the upstream side was reset too
    assert proxy.connections == 0
    async with connect(proxy.port) as (reader, writer):  # new connections work
        assert await round_trip(reader, writer, b"again") == b"again"


async def test_refusing_closes_new_connections(proxy: FaultProxy) -> None:
    async with connect(proxy.port) as (r_old, w_old):
        assert await round_trip(r_old, w_old, b"old") == b"old"
        proxy.refusing = True
        async with connect(proxy.port) as (reader, _):
            with pytest.raises(ConnectionResetError):
                await asyncio.wait_for(reader.read(), LIMIT)
        assert proxy.refused == 1
        assert await round_trip(r_old, w_old, b"still") == b"still"  # existing ones live on
        proxy.refusing = False
        async with connect(proxy.port) as (reader, writer):
            assert await round_trip(reader, writer, b"back") == b"back"
    assert proxy.accepted == 2


async def test_upstream_down_resets_the_client() -> None:
    probe = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = int(probe.sockets[0].getsockname()[1])
    probe.close()
    await probe.wait_closed()
    async with FaultProxy("127.0.0.1", port) as p, connect(p.port) as (reader, _):
        with pytest.raises(ConnectionResetError):
            await asyncio.wait_for(reader.read(), LIMIT)


async def test_idle_timeout_closes_an_idle_connection(echo: EchoServer) -> None:
    async with FaultProxy("127.0.0.1", echo.port, idle_timeout=0.2) as p:
        async with connect(p.port) as (reader, writer):
            assert await round_trip(reader, writer, b"hi") == b"hi"
            assert await asyncio.wait_for(reader.read(), LIMIT) == b""  # closed, not reset
        await eventually(lambda: p.connections == 0)


async def test_idle_timeout_spares_a_busy_connection(echo: EchoServer) -> None:
    async with (
        FaultProxy("127.0.0.1", echo.port, idle_timeout=1.0) as p,
        connect(p.port) as (reader, writer),
    ):
        for i in range(60):  # ~3 s of traffic, a byte every 50 ms
            assert await round_trip(reader, writer, bytes([i])) == bytes([i])
            await asyncio.sleep(0.05)
        assert p.connections == 1
        p.idle_timeout = None  # changing it takes effect on open connections
        p.idle_timeout = 0.1
        assert await asyncio.wait_for(reader.read(), LIMIT) == b""


async def test_stop_closes_everything_and_is_idempotent(echo: EchoServer) -> None:
    p = FaultProxy("127.0.0.1", echo.port)
    port = await p.start()
    assert port == p.port
    async with connect(port) as (reader, writer):
        assert await round_trip(reader, writer, b"x") == b"x"
        p.freeze()
        await asyncio.wait_for(p.stop(), LIMIT)
        with pytest.raises(ConnectionResetError):
            await asyncio.wait_for(reader.read(), LIMIT)
    await p.stop()
    assert p.connections == 0
    with pytest.raises(OSError):
        await asyncio.open_connection("127.0.0.1", port)


def test_kubeconfig_via_points_every_cluster_at_the_proxy(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.write_text(
        yaml.safe_dump(
            {
                "clusters": [
                    {"name": "a", "cluster": {"server": "https://127.0.0.1:6443"}},
                    {"name": "b", "cluster": {"server": "https://localhost:7443/prefix"}},
                ],
                "contexts": [],
                "users": [],
            }
        )
    )
    dst = kubeconfig_via(src, tmp_path / "out" / "kubeconfig", 1234)
    clusters = {c["name"]: c["cluster"] for c in yaml.safe_load(dst.read_text())["clusters"]}
    assert clusters["a"] == {"server": "https://127.0.0.1:1234"}
    assert clusters["b"] == {
        "server": "https://127.0.0.1:1234/prefix",
        "tls-server-name": "localhost",
    }
    assert dst.stat().st_mode & 0o777 == 0o600


async def test_manager_forwards_through_the_proxy(sandbox: SandboxCluster, tmp_path: Path) -> None:
    async with FaultProxy("127.0.0.1", sandbox.port) as p:
        kubeconfig = kubeconfig_via(sandbox.kubeconfig_path, tmp_path / "kubeconfig", p.port)
        manager = Manager(kubeconfig=str(kubeconfig))
        try:
            fid = await manager.add(
                ForwardSpec(target="svc/echo", remote_port=80, namespace="demo")
            )
            snap = manager.get(fid)
            assert snap.state is ForwardState.ACTIVE, snap.reason
            async with connect(snap.local_port) as (reader, writer):
                assert await round_trip(reader, writer, b"through the proxy") == (
                    b"through the proxy"
                )
            assert p.accepted >= 1
        finally:
            await asyncio.wait_for(manager.shutdown(), LIMIT)
