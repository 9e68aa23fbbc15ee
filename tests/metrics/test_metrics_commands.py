"""`--metrics` on the commands that run forwards: `portfwd daemon` (status says where, the
endpoint serves the daemon's forwards) and `portfwd forward` (an address in use is a warning
line; the forward runs regardless)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from portfwd.sandbox.cluster import SandboxCluster
from tests.daemon.conftest import Dirs, daemon_process
from tests.daemon.test_cli import portfwd
from tests.support.cli import PORTFWD

pytestmark = pytest.mark.timeout(120)


async def get(url: str) -> str:
    async with (
        aiohttp.ClientSession() as session,
        session.get(url, timeout=aiohttp.ClientTimeout(total=20)) as resp,
    ):
        assert resp.status == 200
        return await resp.text()


async def test_the_daemon_serves_metrics_and_says_where(
    dirs: Dirs, sandbox: SandboxCluster
) -> None:
    kubeconfig = str(sandbox.kubeconfig_path)
    async with daemon_process(dirs, "--kubeconfig", kubeconfig, "--metrics", "127.0.0.1:0"):
        added = await portfwd("add", "--name", "web", "svc/web", ":80")
        assert added.code == 0, added.err
        status = await portfwd("daemon", "status", "-o", "json")
        url = json.loads(status.out)["metrics"]["url"]
        assert url.startswith("http://127.0.0.1:") and not url.endswith(":0/metrics")
        text = await portfwd("daemon", "status")
        assert f"  metrics:  {url}" in text.out
        families = {f.name: f for f in text_string_to_metric_families(await get(url))}
        (up,) = families["portfwd_forward_up"].samples
        assert up.labels["forward"] == "web" and up.labels["target"] == "svc/web"
        assert up.value == 1


async def test_forward_runs_when_the_metrics_port_is_taken(sandbox: SandboxCluster) -> None:
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        taken = held.getsockname()[1]
        proc = await asyncio.create_subprocess_exec(
            *PORTFWD,
            *("forward", "--kubeconfig", str(sandbox.kubeconfig_path), "--address", "127.0.0.1"),
            *("--metrics", f"127.0.0.1:{taken}", "svc/echo", ":80"),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=dict(os.environ),
        )
        assert proc.stdout is not None
        try:
            line = (await asyncio.wait_for(proc.stdout.readline(), 30)).decode()
            assert line.startswith("Forwarding from 127.0.0.1:"), line
            port = int(line.split(":")[1].split()[0])
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"ping")
            assert await asyncio.wait_for(reader.readexactly(4), 30) == b"ping"
            writer.close()
        finally:
            proc.send_signal(signal.SIGINT)
            _, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 0
    assert err.decode().splitlines()[0] == (
        f"warning: metrics address 127.0.0.1:{taken} is in use; the forwards run without the "
        "endpoint (pick another --metrics ADDR:PORT)"
    )
