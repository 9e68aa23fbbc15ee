"""The daemon follows the kubeconfig on disk as the in-process engine does (one mechanism,
engine/clients.py): a cluster recreated on another port with its kubeconfig rewritten in
place brings every forward of that context back by itself, on its port; the other cluster's
forward moves bytes all along."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from portfwd.sandbox.fleet import SandboxFleet
from tests.engine.kubeconfig_edits import (
    Pump,
    echo_once,
    fleet_config,
    restart_elsewhere,
    rewrite_in_place,
)
from tests.support.wait import until

from .conftest import Dirs, daemon_process
from .test_cli import active, forward_named, portfwd


def _add(context: str, name: str) -> tuple[str, ...]:
    return ("add", "--context", context, "-n", "demo", "--name", name, "svc/echo", ":80")


async def _state(name: str, wanted: str) -> dict[str, Any]:
    async def check() -> dict[str, Any] | None:
        fwd = await forward_named(name)
        return fwd if fwd["state"] == wanted else None

    found: dict[str, Any] = await until(check, 60)
    return found


async def test_daemon_follows_a_cluster_recreated_on_another_port(
    dirs: Dirs, sandbox_pair: SandboxFleet, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = sandbox_pair.kubeconfig_path
    monkeypatch.setenv("KUBECONFIG", str(path))
    async with daemon_process(dirs):
        for context, name in (("sandbox-2", "other"), ("sandbox", "one"), ("sandbox", "two")):
            added = await portfwd(*_add(context, name))
            assert added.code == 0, added.err
        other = await active("other")
        pump = Pump(other["local_port"])
        await pump.start()
        await pump.flowing()
        ports = {name: (await active(name))["local_port"] for name in ("one", "two")}

        await restart_elsewhere(sandbox_pair[0])
        for name in ports:
            await _state(name, "reconnecting")
        await pump.flowing()
        await asyncio.to_thread(rewrite_in_place, path, fleet_config(sandbox_pair))
        for name, port in ports.items():
            fwd = await _state(name, "active")
            assert fwd["local_port"] == port
            await echo_once(port)
        logs = await portfwd("logs", "one")
        assert logs.code == 0, logs.err
        assert f"kubeconfig changed: context sandbox reloaded (server {sandbox_pair[0].url})" in (
            logs.out
        )
        await pump.flowing()
        await pump.stop()
        other = await forward_named("other")
        assert other["state"] == "active"
        assert other["stats"]["connections_total"] == 1
        assert other["stats"]["reconnects"] == 0
