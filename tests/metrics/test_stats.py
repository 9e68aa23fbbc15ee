"""`portfwd stats`: the daemon's counters per forward, with the rate over an interval."""

from __future__ import annotations

import asyncio
import json
import os
from dataclasses import replace

import pytest

from portfwd.cli.stats import rows, table
from portfwd.engine.model import (
    ConnectionInfo,
    ForwardSnapshot,
    ForwardSpec,
    ForwardState,
    ForwardStats,
)
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


def test_the_table_shows_the_engines_figures() -> None:
    base = snap("a", 5000, 2500, "web")
    stats = replace(
        base.stats,
        rate_in=2048.0,
        rate_out=1024.0,
        avg_in=512.0,
        avg_out=256.0,
        errors=3,
        failures=(("no_pod", 1), ("refused", 2)),
        open_p50=0.012,
        open_p99=0.080,
    )
    conn = ConnectionInfo("127.0.0.1:5000", "web-1", 100.0, 10, 20, 1024.0, 0.0, 0.0, 0.0, 0.01)
    found = rows([replace(base, stats=stats), snap("new", 10, 10)], {"a": [conn]}, now=130.0)
    assert [(r.name, r.rate_in, r.avg_out) for r in found] == [
        ("web", 2048.0, 256.0),
        ("new", 0.0, 0.0),
    ]
    lines = table(found).splitlines()
    assert lines[0].split("   ")[:4] == ["NAME", "STATUS", "CONNS", "TOTAL"]
    web = lines[1]
    for words in ("2.0 KiB", "1.0 KiB", "512 B", "12ms/80ms", "3 (no_pod 1, refused 2)"):
        assert words in web
    assert lines[4] == "web: 1 open connection(s)"
    assert lines[6].split()[:4] == ["127.0.0.1:5000", "web-1", "30s", "10"]
    assert lines[6].split()[-2:] == ["10ms", "-"]


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
            # Until a whole second of it was sampled (the first second may be partial).
            await asyncio.sleep(0)  # the traffic task runs
            ran = await portfwd("stats", "echo", "-o", "json")
            while ran.code == 0 and not json.loads(ran.out)["forwards"][0]["rate_in"]:
                ran = await portfwd("stats", "echo", "-o", "json")
        finally:
            stop.set()
            await asyncio.wait_for(moving, 30)
            writer.close()
        assert ran.code == 0, ran.err
        (row,) = json.loads(ran.out)["forwards"]
        assert row["name"] == "echo" and row["state"] == "active"
        assert row["connections_open"] == 1 and row["rate_out"] > 0 and row["rate_in"] > 0
        assert 0 < row["bytes_out"] <= sent
        assert row["avg_in"] > 0 and row["open_p50"] > 0 and row["failures"] == {}
        (conn,) = row["connections"]  # named: its open connection too
        assert 0 < conn["bytes_out"] <= sent and conn["stream_open"] > 0  # (read a moment apart)

        missing = await portfwd("stats", "nosuch")
        assert missing.code == 4
        assert missing.err.splitlines() == ["error: no forward has the name or id 'nosuch'"]
