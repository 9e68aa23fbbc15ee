"""The daemon follows the kubeconfig on disk as the in-process engine does (one mechanism,
engine/clients.py): a cluster recreated on another port with its kubeconfig rewritten in
place brings every forward of that context back by itself, on its port; the other cluster's
forward moves bytes all along."""

from __future__ import annotations

import asyncio

import pytest

from portfwd.daemon.client import RemoteEngine
from portfwd.engine.model import ForwardSnapshot, ForwardState
from portfwd.sandbox.fleet import SandboxFleet
from tests.engine.kubeconfig_edits import (
    Pump,
    echo_once,
    fleet_config,
    restart_elsewhere,
    rewrite_in_place,
)
from tests.support.wait import eventually

from .conftest import Dirs, daemon_process
from .test_cli import portfwd


def _named(engine: RemoteEngine, name: str) -> ForwardSnapshot:
    [snap] = [s for s in engine.snapshot() if s.spec.name == name]
    return snap


async def _reaches(engine: RemoteEngine, name: str, state: ForwardState) -> ForwardSnapshot:
    await eventually(lambda: _named(engine, name).state is state, 60)
    return _named(engine, name)


@pytest.mark.timeout(300)  # two clusters, a daemon and three CLI runs on a loaded machine
async def test_daemon_follows_a_cluster_recreated_on_another_port(
    dirs: Dirs, sandbox_pair: SandboxFleet, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = sandbox_pair.kubeconfig_path
    monkeypatch.setenv("KUBECONFIG", str(path))
    async with daemon_process(dirs):
        for context, name in (("sandbox-2", "other"), ("sandbox", "one"), ("sandbox", "two")):
            add = ("add", "--context", context, "-n", "demo", "--name", name, "svc/echo", ":80")
            added = await portfwd(*add)
            assert added.code == 0, added.err
        engine = await RemoteEngine.attach(dirs.paths, client="test")
        try:
            other = await _reaches(engine, "other", ForwardState.ACTIVE)
            pump = Pump(other.local_port)
            await pump.start()
            await pump.flowing()
            ours = {n: (await _reaches(engine, n, ForwardState.ACTIVE)) for n in ("one", "two")}

            await restart_elsewhere(sandbox_pair[0])
            for name in ours:
                await _reaches(engine, name, ForwardState.RECONNECTING)
            await pump.flowing()
            await asyncio.to_thread(rewrite_in_place, path, fleet_config(sandbox_pair))
            server = sandbox_pair[0].url
            for name, before in ours.items():
                snap = await _reaches(engine, name, ForwardState.ACTIVE)
                assert snap.local_port == before.local_port
                await echo_once(snap.local_port)
                line = f"kubeconfig changed: context sandbox reloaded (server {server})"
                assert line in [e.message for e in engine.logs(snap.id)]
            await pump.flowing()
            await pump.stop()
            other = _named(engine, "other")
            assert other.state is ForwardState.ACTIVE
            assert other.stats.connections_total == 1 and other.stats.reconnects == 0
        finally:
            await engine.shutdown()
