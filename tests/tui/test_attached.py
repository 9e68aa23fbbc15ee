"""The dashboard attached to a daemon (issue 11): the header says so, two dashboards see one
state live, `q` detaches and leaves the forwards moving bytes, `Q` stops them explicitly."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest

from portfwd.daemon.client import RemoteEngine
from portfwd.engine.catalog import KubeCatalog
from portfwd.engine.clients import ClientPool
from portfwd.engine.model import ForwardState
from tests.daemon.conftest import InProcessDaemon, daemon, dirs  # noqa: F401 (fixtures)
from tests.tui.conftest import RecordingApp
from tests.tui.helpers import settle, wait_until

pytestmark = pytest.mark.timeout(90)
SIZE = (160, 40)


@asynccontextmanager
async def attached_app(d: InProcessDaemon) -> AsyncIterator[RecordingApp]:
    """A dashboard as `portfwd` builds one when a daemon runs (tui/run.py)."""
    remote = await RemoteEngine.attach(d.paths, client="dashboard")
    clients = ClientPool(str(d.sandbox.kubeconfig_path))
    app = RecordingApp(
        remote,
        catalog=KubeCatalog(clients, kubeconfig=str(d.sandbox.kubeconfig_path)),
        session=None,
        context="sandbox",
        cluster="sandbox",
        namespace="demo",
        daemon=remote.server,
    )
    try:
        yield app
    finally:
        await remote.shutdown()
        await clients.close()


def status(app: RecordingApp, fid: str) -> str:
    return str(app.dashboard.table.get_row(fid)[0])


async def echo(port: int, payload: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(payload)
        await writer.drain()
        return await asyncio.wait_for(reader.readexactly(len(payload)), 15)
    finally:
        writer.close()


async def test_two_dashboards_share_the_daemons_forwards_and_q_detaches(
    daemon: InProcessDaemon,  # noqa: F811
) -> None:
    pid = daemon.server.status()["pid"]
    async with (
        attached_app(daemon) as first,
        attached_app(daemon) as second,
        first.run_test(size=SIZE) as p1,
        second.run_test(size=SIZE) as p2,
    ):
        await settle(p1)
        await settle(p2)
        assert first.sub_title.startswith(f"attached to the daemon (pid {pid})")
        fid = await first.engine.add(daemon.spec(name="shared"))
        await wait_until(p1, lambda: status(first, fid) == "● active", what="active in 1")
        await wait_until(p2, lambda: status(second, fid) == "● active", what="active in 2")
        # A change in one window shows in the other.
        await second.engine.stop(fid)
        await wait_until(p1, lambda: status(first, fid) == "■ stopped", what="stopped in 1")
        await first.engine.start(fid)
        await wait_until(p2, lambda: status(second, fid) == "● active", what="active in 2")
        port = first.engine.get(fid).local_port
        await p1.press("q")
        await wait_until(p1, lambda: not first.is_running, what="first detached")
        assert any("keep running in the daemon" in t for t in first.toasts)
        # Detached: the forward still moves bytes and the other window still follows.
        assert daemon.manager.get(fid).state is ForwardState.ACTIVE
        assert await echo(port, b"after detach") == b"after detach"
        await second.engine.stop(fid)
        await wait_until(p2, lambda: status(second, fid) == "■ stopped", what="stopped")


async def test_reattach_finds_the_forwards_and_capital_q_stops_them(
    daemon: InProcessDaemon,  # noqa: F811
) -> None:
    fid = await daemon.manager.add(daemon.spec(name="kept"))
    port = daemon.manager.get(fid).local_port
    async with attached_app(daemon) as app, app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await wait_until(pilot, lambda: status(app, fid) == "● active", what="shown active")
        assert await echo(port, b"x" * 1000) == b"x" * 1000
        await pilot.press("Q")
        await wait_until(pilot, lambda: not app.is_running, what="app exits")
    assert daemon.manager.get(fid).state is ForwardState.STOPPED  # stopped, not removed
    assert [s.id for s in daemon.manager.snapshot()] == [fid]


async def test_the_dashboard_exits_when_the_daemon_goes_away(
    daemon: InProcessDaemon,  # noqa: F811
) -> None:
    async with attached_app(daemon) as app, app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await daemon.server.close()
        await wait_until(pilot, lambda: not app.is_running, what="app exits")
    assert app.return_code == 1
