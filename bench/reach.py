"""`portfwd ns` and `portfwd proxy`, measured side by side in one run against the sandbox.

1. `portfwd ns` (the CLI, a subprocess) on a namespace of N Services (each port 80 ->
   targetPort `line` of a 2-replica deployment whose backend answers `<pod> <line>`): time from
   starting the process until every Service answered a request at its own address and native
   port (the client polls each until it answers), and the process's RSS then. Baseline, same
   run: the same for a namespace of one Service.
2. A new connection's latency (connect -> `ping\\n` out -> `<pod> ping\\n` back), p50/p99 over
   `--connections` sequential connections, in-process (sandbox, engine and client share one
   event loop, one clock): through the proxy (SOCKS5 by name: the stream opens on the pod's
   shared session), through a direct forward (`svc/app`, the engine's usual path), and with a
   fresh port-forward upgrade per connection (what podproxy does: a new SPDY session each time).

Usage: .venv/bin/python bench/reach.py [--services 50] [--connections 500] [--quick]
`--quick`: 5 Services, 30 connections (a smoke run for the suite).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import struct
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from portfwd.engine.dial import Dialer
from portfwd.engine.manager import Manager
from portfwd.engine.model import ForwardSpec
from portfwd.reach.proxy import ProxyServer
from portfwd.sandbox.cluster import SandboxCluster
from portfwd.tunnel.addresses import BindAddress
from portfwd.tunnel.pool import TunnelPool

NS = "bench"
LIMIT = 120.0


def topology(services: int) -> dict[str, Any]:
    container = {
        "name": "app",
        "image": "sandbox/line:1.0",
        "ports": [{"name": "line", "containerPort": 9000, "backend": "line"}],
    }
    return {
        "namespaces": [
            {
                "name": NS,
                "deployments": [
                    {
                        "name": "app",
                        "replicas": 2,
                        "labels": {"app": "app"},
                        "containers": [container],
                    }
                ],
                "services": [
                    {
                        "name": f"s{i:02d}",
                        "selector": {"app": "app"},
                        "ports": [{"name": "tcp", "port": 80, "targetPort": "line"}],
                    }
                    for i in range(services)
                ],
            }
        ]
    }


async def ping(host: str, port: int) -> bool:
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), 2)
    except (OSError, TimeoutError):
        return False
    try:
        writer.write(b"ping\n")
        line = await asyncio.wait_for(reader.readline(), 2)
        return line.endswith(b" ping\n")
    except (OSError, TimeoutError):
        return False
    finally:
        writer.close()


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def ns_run(services: int) -> tuple[float, float]:
    """(seconds until every Service answered, RSS MiB then) of `portfwd ns` on N Services."""
    async with SandboxCluster(topology(services)) as sb:
        with tempfile.TemporaryDirectory() as config:
            env = dict(os.environ, PORTFWD_CONFIG_DIR=config)
            started = time.perf_counter()
            proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "portfwd",
                "ns",
                NS,
                "--kubeconfig",
                str(sb.kubeconfig_path),
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.DEVNULL,
                env=env,
            )  # fmt: skip  (its warnings are not figures)
            try:
                assert proc.stdout is not None
                targets: list[tuple[str, int]] = []
                async with asyncio.timeout(LIMIT):
                    while len(targets) < services:
                        line = (await proc.stdout.readline()).decode()
                        if not line:
                            raise SystemExit("portfwd ns ended early")
                        if line.startswith("s") and f".{NS} " in line:
                            host, _, port = line.split()[1].rpartition(":")
                            targets.append((host, int(port)))
                    pending = set(targets)
                    while pending:
                        answered = await asyncio.gather(*(ping(h, p) for h, p in pending))
                        pending = {t for t, ok in zip(pending, answered, strict=True) if not ok}
                        if pending:
                            await asyncio.sleep(0.02)
                elapsed = time.perf_counter() - started
                return elapsed, rss_mib(proc.pid)
            finally:
                proc.terminate()
                await asyncio.wait_for(proc.wait(), 30)


async def timed(open_one: Any, count: int) -> list[float]:
    out = []
    for _ in range(count):
        t0 = time.perf_counter()
        reader, writer = await open_one()
        writer.write(b"ping\n")
        line = await asyncio.wait_for(reader.readline(), 30)
        out.append(time.perf_counter() - t0)
        assert line.endswith(b" ping\n"), line
        writer.close()
    return out


async def latency_run(connections: int) -> tuple[dict[str, list[float]], dict[str, int]]:
    async with SandboxCluster(topology(1)) as sb:
        manager = Manager(kubeconfig=str(sb.kubeconfig_path))
        assert manager.informers is not None
        dialer = Dialer(manager.informers, manager.tunnels)
        client = await manager.clients.get(None, None)
        server = ProxyServer(dialer, {"sandbox": client}, "sandbox")
        await server.start(BindAddress("127.0.0.1", True), 0)
        try:
            fid = await manager.add(
                ForwardSpec(target="svc/s00", remote_port=80, namespace=NS, spread=True)
            )
            fport = manager.get(fid).local_port

            async def via_proxy() -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
                reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
                name = f"s00.{NS}".encode()
                writer.write(b"\x05\x01\x00")
                writer.write(
                    b"\x05\x01\x00\x03" + bytes([len(name)]) + name + struct.pack("!H", 80)
                )
                await reader.readexactly(2 + 10)
                return reader, writer

            async def via_forward() -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
                return await asyncio.open_connection("127.0.0.1", fport)

            pod = sb.pod_names(NS, {"app": "app"})[0]
            uid = (sb.get_object("pods", NS, pod) or {})["metadata"]["uid"]

            class Fresh:
                """A new session (one upgrade) per connection, closed after it."""

                async def __call__(self) -> tuple[Any, Any]:
                    self.pool = TunnelPool(idle_close=0)
                    stream = await self.pool.tunnel(client).open(NS, pod, 9000, uid)
                    return _StreamReader(stream), _StreamWriter(stream, self.pool)

            results: dict[str, list[float]] = {}
            upgrades: dict[str, int] = {}
            for name, opener in (
                ("proxy (shared session)", via_proxy),
                ("direct forward", via_forward),
                ("fresh upgrade per connection", Fresh()),
            ):
                before = sb.portforward_requests
                results[name] = await timed(opener, connections)
                upgrades[name] = sb.portforward_requests - before
            return results, upgrades
        finally:
            await server.close()
            dialer.close()
            await manager.shutdown()


class _StreamReader:
    def __init__(self, stream: Any) -> None:
        self.stream = stream

    async def readline(self) -> bytes:
        data = b""
        while not data.endswith(b"\n"):
            chunk = await self.stream.receive()
            if not chunk:
                break
            data += chunk
        return data


class _StreamWriter:
    def __init__(self, stream: Any, pool: TunnelPool) -> None:
        self.stream, self.pool = stream, pool
        self._task: asyncio.Task[None] | None = None

    def write(self, data: bytes) -> None:
        self._task = asyncio.ensure_future(self.stream.send(data))

    def close(self) -> None:
        _closing.add(asyncio.ensure_future(self._close()))

    async def _close(self) -> None:
        if self._task is not None:
            await self._task
        self.stream.abort()
        await self.pool.close()


_closing: set[asyncio.Future[None]] = set()


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--services", type=int, default=50)
    parser.add_argument("--connections", type=int, default=500)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    if args.quick:
        args.services, args.connections = 5, 30
    print(f"1. portfwd ns: {args.services} Services vs 1 (subprocess, to all reachable)")
    for n in (1, args.services):
        seconds, rss = await ns_run(n)
        print(f"   {n:3d} Services: all reachable after {seconds:6.2f} s, RSS {rss:6.1f} MiB")
    print(f"2. new connection, connect -> answer, {args.connections} sequential (ms)")
    results, upgrades = await latency_run(args.connections)
    for name, values in results.items():
        print(
            f"   {name:30s} p50 {pct(values, 0.5):7.2f}  p99 {pct(values, 0.99):7.2f}"
            f"  (mean {statistics.fmean(values) * 1000:7.2f}; upgrades {upgrades[name]})"
        )
    if _closing:
        await asyncio.gather(*_closing)


if __name__ == "__main__":
    asyncio.run(main())
