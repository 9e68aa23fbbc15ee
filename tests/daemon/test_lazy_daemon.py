"""A lazy forward through a real `portfwd daemon`: `add --lazy` binds and reports it idle,
`wait` counts idle as ready (not as active), bytes flow, and the forward, its flags and its
port survive a daemon restart, idle again."""

from __future__ import annotations

import json
import signal

import pytest

from portfwd.sandbox.cluster import SandboxCluster

from .conftest import Dirs, daemon_process
from .test_cli import add_echo, echo_through, forward_named, portfwd

pytestmark = pytest.mark.timeout(120)

NOT_READY = 124


async def test_lazy_forward_is_idle_ready_and_survives_a_daemon_restart(
    dirs: Dirs, sandbox: SandboxCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KUBECONFIG", str(sandbox.kubeconfig_path))
    async with daemon_process(dirs) as daemon:
        added = await portfwd(
            *add_echo("--name", "lz", "--lazy", "--idle-stop", "1h", "-o", "json")
        )
        assert added.code == 0, added
        [entry] = json.loads(added.out)["forwards"]
        assert entry["state"] == "idle"
        port = entry["port"]
        assert sandbox.portforward_requests == 0  # bound, no tunnel yet

        ready = await portfwd("wait", "lz", "--timeout", "10s")
        assert ready.code == 0, ready
        active = await portfwd("wait", "lz", "--timeout", "1s", "--for", "active")
        assert active.code == NOT_READY, active
        assert active.one_error() == "error: lz: not ready after 1s: idle"

        fwd = await forward_named("lz")
        assert fwd["spec"]["lazy"] is True and fwd["spec"]["idle_stop"] == 3600
        ls = await portfwd("ls")
        assert "idle" in ls.out, ls

        await echo_through(port)  # the first connection waits for the tunnel, then flows
        assert sandbox.portforward_requests >= 1
        assert (await daemon.stop(signal.SIGTERM)) == 0

    async with daemon_process(dirs):
        fwd = await forward_named("lz")
        assert fwd["state"] == "idle", fwd  # restored as it was wanted: lazy, asleep
        assert fwd["spec"]["lazy"] is True and fwd["spec"]["idle_stop"] == 3600
        assert fwd["bound"][0][1] == port
        await echo_through(port)
