"""The probe from the command line (issue 19 §1, issue 20 §1): `portfwd add --probe` into the
daemon, `ls -o wide` and `-o json` showing `degraded` with the reason, `wait` counting the
probe, and `portfwd forward --probe` saying it on stderr."""

from __future__ import annotations

import asyncio
import os
import signal

import pytest

from portfwd.sandbox.cluster import SandboxCluster
from tests.support.cli import PORTFWD
from tests.support.wait import until

from .conftest import Dirs, daemon_process
from .test_cli import forward_named, portfwd

pytestmark = pytest.mark.timeout(120)


async def test_add_with_a_probe_that_404s(dirs: Dirs, sandbox: SandboxCluster) -> None:
    async with daemon_process(dirs, "--kubeconfig", str(sandbox.kubeconfig_path)):
        for name, probe in (("good", "http:/healthz"), ("bad", "http:/nope")):
            added = await portfwd(
                "add", "--name", name, "--probe", probe, "--probe-interval", "1s", "svc/web", ":80"
            )
            assert added.code == 0, added.err

        async def degraded() -> dict[str, object] | None:
            fwd = await forward_named("bad")
            return fwd if fwd["state"] == "degraded" else None

        bad = await until(degraded)
        assert bad["reason"] == "probe http:/nope: HTTP 404 Not Found"
        assert bad["spec"]["probe"] == "http:/nope" and bad["spec"]["probe_interval"] == 1.0
        health = bad["health"]
        assert isinstance(health, dict)
        assert health["probe_ok"] is False and health["probe_result"] == "HTTP 404 Not Found"
        assert health["listening_at"] and health["resolved_at"] and health["pod_ready"] is True

        # wait counts the probe: the good one is ready, the bad one is not (its reason said).
        ready = await portfwd("wait", "good", "--timeout", "30s")
        assert ready.code == 0, ready.err
        late = await portfwd("wait", "bad", "--timeout", "2s")
        assert late.code != 0
        assert "bad: not ready after 2s: degraded: probe http:/nope: HTTP 404 Not Found" in late.err

        wide = await portfwd("ls", "-o", "wide")
        assert wide.code == 0, wide.err
        header, *rows = wide.out.splitlines()
        assert "HEALTH" in header
        (bad_row,) = [r for r in rows if r.startswith("bad ")]
        assert "degraded" in bad_row and "probe failing" in bad_row
        assert bad_row.endswith("probe http:/nope: HTTP 404 Not Found")
        (good_row,) = [r for r in rows if r.startswith("good ")]
        assert "active" in good_row and "probe ok" in good_row


async def test_forward_says_degraded_on_stderr(sandbox: SandboxCluster) -> None:
    proc = await asyncio.create_subprocess_exec(
        *PORTFWD,
        *("forward", "--kubeconfig", str(sandbox.kubeconfig_path), "--address", "127.0.0.1"),
        *("--probe", "http:/nope", "svc/web", ":80"),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=dict(os.environ),
    )
    assert proc.stdout is not None and proc.stderr is not None
    try:
        line = (await asyncio.wait_for(proc.stdout.readline(), 30)).decode()
        assert line.startswith("Forwarding from 127.0.0.1:"), line
        said = (await asyncio.wait_for(proc.stderr.readline(), 30)).decode()
        assert said == "warning: degraded: probe http:/nope: HTTP 404 Not Found\n"
    finally:
        proc.send_signal(signal.SIGINT)
        await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 0
