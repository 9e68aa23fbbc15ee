"""`portfwd up` of one profile over two clusters at once: bytes through both; one cluster's
API server down -> its forward says it is reconnecting, the other's keeps moving bytes; back
up -> it recovers by itself."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from portfwd.sandbox.cluster import SandboxCluster
from tests.support.cli import private_env, write_private

from .test_up import echo, up


@contextlib.asynccontextmanager
async def two_clusters() -> AsyncIterator[tuple[SandboxCluster, SandboxCluster]]:
    async with contextlib.AsyncExitStack() as stack:
        clusters = []
        for _ in range(2):
            cluster = SandboxCluster()
            await asyncio.wait_for(cluster.start(), 30)
            stack.push_async_callback(lambda c=cluster: asyncio.wait_for(c.stop(), 30))
            clusters.append(cluster)
        yield clusters[0], clusters[1]


async def _stderr_until(run_proc: asyncio.subprocess.Process, prefix: str, said: list[str]) -> str:
    assert run_proc.stderr is not None
    async with asyncio.timeout(45):
        while True:
            line = (await run_proc.stderr.readline()).decode().rstrip("\n")
            assert line, f"stderr ended; it said {said}"
            said.append(line)
            if line.startswith(prefix):
                return line


@pytest.mark.timeout(150)
async def test_one_cluster_down_leaves_the_other_unaffected(tmp_path: Path) -> None:
    async with two_clusters() as (east, west):
        env = private_env(tmp_path)
        write_private(
            tmp_path / "config" / "profiles.yaml",
            f"""\
profiles:
  both:
    defaults: {{context: sandbox, namespace: demo, address: 127.0.0.1}}
    forwards:
      - {{name: east, target: svc/echo, ports: [":80"], kubeconfig: "{east.kubeconfig_path}"}}
      - {{name: west, target: svc/echo, ports: [":80"], kubeconfig: "{west.kubeconfig_path}"}}
""",
        )
        async with up("both", env=env, expect=["east", "west"]) as run:
            for name in ("east", "west"):
                assert await echo(run.ports[name], name.encode()) == name.encode()
            said: list[str] = []
            await east.stop_api()
            try:
                line = await _stderr_until(run.proc, "east: warning: reconnecting", said)
                assert "Kubernetes API" in line, line
                for i in range(20):  # west keeps moving bytes, connection after connection
                    payload = f"west {i}".encode() * 1000
                    assert await echo(run.ports["west"], payload) == payload
            finally:
                await east.start_api()
            while True:  # until its recovery line (not a warning)
                line = await _stderr_until(run.proc, "east: ", said)
                if not line.startswith("east: warning: "):
                    break
            assert line.startswith("east: active again: pod echo-"), said
            assert await echo(run.ports["east"], b"back") == b"back"
            assert not [line for line in said if line.startswith("west: ")], said
        assert run.code == 0, run.stderr
