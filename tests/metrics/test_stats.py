"""`portfwd stats`: the daemon's counters per forward, with the rate over an interval."""

from __future__ import annotations

import asyncio
import json
import os

import pytest

from portfwd.cli.stats import rows, table
from portfwd.engine.model import ForwardSnapshot, ForwardSpec, ForwardState, ForwardStats
from portfwd.sandbox.cluster import SandboxCluster
from tests.daemon.conftest import Dirs, daemon_process
from tests.daemon.test_cli import active, portfwd

pytestmark = pytest.mark.timeout(120)


def snap(fid: str, bytes_in: int, bytes_out: int, name: str | None = None) -> ForwardSnapshot:
    return ForwardSnapshot(
        id=fid,
        spec=ForwardSpec(target="svc/web", remote_port=80, name=name),
        state=ForwardState.ACTIVE,
        stats=ForwardStats(
            connections_open=1, connections_total=3, bytes_in=bytes_in, bytes_out=bytes_out
        ),
    )


def test_rates_are_the_difference_over_the_interval() -> None:
    found = rows(
        [snap("a", 1000, 500), snap("gone", 1, 1)],
        [snap("a", 5000, 2500, "web"), snap("new", 10, 10)],
        2.0,
    )
    assert [(r.name, r.rate_in, r.rate_out) for r in found] == [
        ("web", 2000.0, 1000.0),
        ("new", 0.0, 0.0),  # added between the readings: no rate yet
    ]
    text = table(found)
    assert text.splitlines()[0].split() == [
        "NAME",
        "STATUS",
        "CONNS",
        "TOTAL",
        "IN",
        "OUT",
        "IN/S",
        "OUT/S",
        "ERRORS",
        "RECONN",
    ]
    assert text.splitlines()[1].split()[:4] == ["web", "active", "1", "3"]


async def test_stats_of_the_daemon(dirs: Dirs, sandbox: SandboxCluster) -> None:
    async with daemon_process(dirs, "--kubeconfig", str(sandbox.kubeconfig_path)):
        added = await portfwd("add", "--name", "echo", "--address", "127.0.0.1", "svc/echo", ":80")
        assert added.code == 0, added.err
        port = (await active("echo"))["bound"][0][1]
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        sent = 0
        stop = asyncio.Event()

        async def traffic() -> None:
            nonlocal sent
            while not stop.is_set():
                chunk = os.urandom(65_536)
                writer.write(chunk)
                assert await asyncio.wait_for(reader.readexactly(len(chunk)), 30) == chunk
                sent += len(chunk)

        moving = asyncio.create_task(traffic())
        try:
            ran = await portfwd("stats", "echo", "-o", "json", "--interval", "1s")
        finally:
            stop.set()
            await asyncio.wait_for(moving, 30)
            writer.close()
        assert ran.code == 0, ran.err
        (row,) = json.loads(ran.out)["forwards"]
        assert row["name"] == "echo" and row["state"] == "active"
        assert row["connections_open"] == 1 and row["rate_out"] > 0 and row["rate_in"] > 0
        assert 0 < row["bytes_out"] <= sent

        missing = await portfwd("stats", "nosuch")
        assert missing.code == 4
        assert missing.err.splitlines() == ["error: no forward has the name or id 'nosuch'"]
