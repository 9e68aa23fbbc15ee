"""The dashboard attached to a daemon (issue 11): the header says so, two dashboards see one
state live, `q` detaches and leaves the forwards moving bytes, `Q` stops them explicitly."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
from textual.widgets import Static

from portfwd.daemon.client import RemoteEngine
from portfwd.daemon.server import DaemonServer
from portfwd.engine.catalog import KubeCatalog
from portfwd.engine.clients import ClientPool
from portfwd.engine.manager import Manager
from portfwd.engine.model import ForwardState
from portfwd.store.session import Session
from portfwd.store.state import StateStore
from portfwd.tui.screens.dialogs import ConfirmScreen
from tests.daemon.conftest import Dirs, InProcessDaemon, daemon, dirs  # noqa: F401 (fixtures)
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
        assert first.exit_message == f"1 forward keeps running in the daemon (pid {pid})"
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
        await settle(pilot)
        assert isinstance(app.screen, ConfirmScreen)  # it asks first
        assert "Stop all 1 forward running in the daemon" in str(
            app.screen.query_one("#question", Static).render()
        )
        await pilot.press("n")
        await settle(pilot)
        assert app.is_running and daemon.manager.get(fid).state is ForwardState.ACTIVE
        await pilot.press("Q")
        await settle(pilot)
        await pilot.press("y")
        await wait_until(pilot, lambda: not app.is_running, what="app exits")
    assert daemon.manager.get(fid).state is ForwardState.STOPPED  # stopped, not removed
    assert [s.id for s in daemon.manager.snapshot()] == [fid]
    pid = daemon.server.status()["pid"]
    assert app.exit_message == f"stopped 1 forward in the daemon (pid {pid}); it keeps running"


async def test_the_dashboard_exits_when_the_daemon_goes_away_and_none_is_wanted(
    daemon: InProcessDaemon,  # noqa: F811
) -> None:
    async with attached_app(daemon) as app, app.run_test(size=SIZE) as pilot:
        app.reattach = _never
        await settle(pilot)
        await daemon.server.close()
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmScreen), what="the offer")
        await pilot.press("n")
        await wait_until(pilot, lambda: not app.is_running, what="app exits")
    assert app.return_code == 1 and app.daemon_lost


async def _never() -> RemoteEngine:
    raise AssertionError("not asked for")


async def test_daemon_gone_offers_to_start_one_and_reattaches_with_the_session(
    daemon: InProcessDaemon,  # noqa: F811
    dirs: Dirs,  # noqa: F811
) -> None:
    fid = await daemon.manager.add(daemon.spec(name="kept"))
    started: list[DaemonServer] = []

    async def reattach() -> RemoteEngine:
        """What tui/run.py does: a daemon on the same session file, then attach to it."""
        manager = Manager(kubeconfig=str(daemon.sandbox.kubeconfig_path), detect_wake=False)
        store = StateStore(dirs.config / "state.yaml")
        session = Session(manager, store, await asyncio.to_thread(store.load))
        server = DaemonServer(manager, session, dirs.paths)
        started.append(server)
        await server.start()
        await server.restore()
        return await RemoteEngine.attach(dirs.paths, client="dashboard")

    try:
        async with attached_app(daemon) as app, app.run_test(size=SIZE) as pilot:
            app.reattach = reattach
            await settle(pilot)
            await wait_until(pilot, lambda: status(app, fid) == "● active", what="active")
            await daemon.server.close()
            await wait_until(pilot, lambda: isinstance(app.screen, ConfirmScreen), what="the offer")
            assert "Start a daemon again and re-attach" in str(
                app.screen.query_one("#question", Static).render()
            )
            first = app.engine
            await pilot.press("y")
            # The old row may still read active (its last event): wait for the new engine.
            await wait_until(
                pilot,
                lambda: (
                    app.engine is not first
                    and fid in app.dashboard.table.snapshots
                    and status(app, fid) == "● active"
                ),
                what="the restored forward active in the new daemon",
            )
            assert app.is_running and not app.daemon_lost
            new_pid = started[0].status()["pid"]
            assert app.sub_title.startswith(f"attached to the daemon (pid {new_pid})")
            port = app.engine.get(fid).local_port
            assert await echo(port, b"back again") == b"back again"
            await pilot.press("q")
            await wait_until(pilot, lambda: not app.is_running, what="detached")
            await app.engine.shutdown()
    finally:
        for server in started:
            await asyncio.wait_for(server.close(), 30)
