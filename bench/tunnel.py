"""The tunnel, measured: portfwd's three wire protocols beside kubectl's two, in one run.

Processes: the sandbox cluster (API server, kubelet side and echo backends, TLS), one
forwarder at a time (each in its own process, all to svc/echo port 80), this script as the
client. Forwarders:

- kubectl port-forward, its default (SPDY tunnelled in a WebSocket, 1.31+);
- kubectl port-forward, plain SPDY (KUBECTL_PORT_FORWARD_WEBSOCKETS=false);
- portfwd forward --protocol auto (SPDY over WebSocket here), spdy, and v4.

Figures, per forwarder:

1. new connection + small request (connect, a 100-byte framed request, its echo, close),
   N one after another: p50 and p99 in ms, and the forwarder's CPU ms per connection;
2. throughput of one connection, M MiB each way at once: MB/s each way, and the
   forwarder's CPU seconds per GiB moved (both directions counted);
3. VmRSS after the N back-to-back connections, and after C concurrent ones (each a small
   echo, all checked byte for byte: "ok" counts them);
4. H concurrent clients that each send 1 MB, shut down their sending side and read the echo
   to EOF: how many got all of it; VmRSS right after, and S seconds later.

All forwarders run at once (idle while not measured) and the new-connection latency and the
throughput are taken in `--rounds` rounds that take turns between them, so a slow minute of a
shared machine does not land on one of them only; p50/p99 are over all rounds' connections,
MB/s over all rounds' bytes. `--rtt MS` puts the
API server that many milliseconds away (bench/delayproxy.py, a delaying TCP proxy), as a
real cluster is: per connection, kubectl waits for two stream replies, v4 pays a TLS
handshake and an upgrade, portfwd's SPDY sends at once.

Usage: .venv/bin/python bench/tunnel.py [--mb 200] [--connections 500] [--rounds 5]
       [--concurrent 1000] [--halfclose 500] [--settle 60] [--rtt 0] [--only portfwd]
       [--protocols auto,spdy,v4] [--uvloop] [--sandbox-loop asyncio|uvloop]
Note: the sandbox's kubelet side is Python, in the same process as the backends, so every
forwarder also pays for that hop (a real cluster's kubelet is Go). With two cores, the client,
the forwarder and the sandbox share them: `srv/c` is the sandbox's CPU per connection, which
on asyncio's own loop is more than the forwarder's; `--sandbox-loop uvloop` takes about a
quarter off it (0.70 -> 0.48 ms behind portfwd, 0.86 -> 0.65 ms behind kubectl).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shutil
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from kubectl_vs_portfwd import kubectl_process, kubectl_version  # sibling scripts
from throughput import (
    SANDBOX_LOOPS,
    cpu_seconds,
    forwarder_process,
    latencies,
    memory_kib,
    percentile,
    sandbox_with_pid,
    throughput,
)


@dataclass
class Row:
    name: str
    p50: float = 0.0
    p99: float = 0.0
    cpu_per_conn: float = 0.0  # ms of the forwarder's CPU per new connection
    server_per_conn: float = 0.0  # ms of the sandbox's CPU per new connection (the server side)
    mbps: float = 0.0
    cpu_per_gib: float = 0.0
    rss_serial: float = 0.0
    rss_concurrent: float = 0.0
    concurrent_ok: int = 0
    halfclose_ok: int = 0
    rss_halfclose: float = 0.0
    rss_settled: float = 0.0
    notes: list[str] = field(default_factory=list)


@contextlib.asynccontextmanager
async def kubectl(kubeconfig: str, *, websockets: bool) -> AsyncIterator[tuple[int, int]]:
    async with kubectl_process(kubeconfig, ":80", websockets=websockets) as (pid, (port,)):
        yield pid, port


@contextlib.asynccontextmanager
async def portfwd(
    kubeconfig: str, protocol: str, *, use_uvloop: bool = True
) -> AsyncIterator[tuple[int, int]]:
    argv = [
        sys.executable,
        *("-m", "portfwd", "forward", "--kubeconfig", kubeconfig, "--protocol", protocol),
        *("--address", "127.0.0.1", "svc/echo", ":80"),
    ]
    env = {**os.environ, "PORTFWD_UVLOOP": "1" if use_uvloop else "0"}
    async with forwarder_process(argv, 1, env=env) as (proc, (port,)):
        yield proc.pid, port


async def concurrent_echoes(port: int, count: int) -> int:
    """`count` connections at once, each echoing its own 1 KiB; how many came back intact."""

    async def one(i: int) -> bool:
        payload = os.urandom(1024)
        try:
            async with asyncio.timeout(60):
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
                writer.write(payload)
                await writer.drain()
                got = await reader.readexactly(len(payload))
                writer.close()
                return got == payload
        except (OSError, TimeoutError, asyncio.IncompleteReadError):
            return False

    results = await asyncio.gather(*(one(i) for i in range(count)))
    return sum(results)


async def halfclose_echoes(port: int, count: int, size: int = 1_000_000) -> int:
    """`count` clients at once: send `size` bytes, shutdown(WR), read to EOF. Complete ones."""

    async def one(i: int) -> bool:
        payload = os.urandom(size)
        try:
            async with asyncio.timeout(120):
                reader, writer = await asyncio.open_connection("127.0.0.1", port)

                async def send() -> None:
                    writer.write(payload)
                    await writer.drain()
                    writer.write_eof()

                sender = asyncio.create_task(send())
                got = bytearray()
                while chunk := await reader.read(1 << 16):
                    got += chunk
                await sender
                writer.close()
                return bytes(got) == payload
        except (OSError, TimeoutError):
            return False

    results = await asyncio.gather(*(one(i) for i in range(count)))
    return sum(results)


async def measure_latency(
    running: dict[str, tuple[int, int]], connections: int, rounds: int, server: int
) -> tuple[dict[str, list[float]], dict[str, float], dict[str, float]]:
    """Per forwarder, ms per new connection, `connections` in all, taken in turns; the
    forwarder's CPU ms per connection over them, and the server's (pid `server`)."""
    samples: dict[str, list[float]] = {name: [] for name in running}
    cpu = dict.fromkeys(running, 0.0)
    served = dict.fromkeys(running, 0.0)
    for _pid, port in running.values():
        await latencies("127.0.0.1", port, 20)  # warm-up (a session, pooled connections)
    per_round = max(1, connections // rounds)
    for _ in range(rounds):
        for name, (pid, port) in running.items():
            cpu0, server0 = cpu_seconds(pid), cpu_seconds(server)
            samples[name] += [x * 1000 for x in await latencies("127.0.0.1", port, per_round)]
            cpu[name] += cpu_seconds(pid) - cpu0
            served[name] += cpu_seconds(server) - server0
    return (
        samples,
        {name: 1000 * cpu[name] / len(samples[name]) for name in running},
        {name: 1000 * served[name] / len(samples[name]) for name in running},
    )


async def measure_throughput(
    rows: dict[str, Row], running: dict[str, tuple[int, int]], args: argparse.Namespace
) -> None:
    """MB/s and CPU per GiB of every forwarder, `--mb` MiB each way in all, taken in
    `--rounds` rounds that take turns between them (as the latency is): a slow minute of a
    shared machine lands on all of them, not on one."""
    total = args.mb * 1024 * 1024
    per_round = max(1, total // args.rounds)
    seconds = dict.fromkeys(running, 0.0)
    cpu = dict.fromkeys(running, 0.0)
    moved = dict.fromkeys(running, 0)
    for _pid, port in running.values():
        await throughput("127.0.0.1", port, min(8 * 1024 * 1024, total))  # warm-up
    for _ in range(args.rounds):
        for name, (pid, port) in running.items():
            cpu0 = cpu_seconds(pid)
            mbps = await throughput("127.0.0.1", port, per_round)
            cpu[name] += cpu_seconds(pid) - cpu0
            seconds[name] += per_round / (mbps * 1e6)
            moved[name] += per_round
    for name, row in rows.items():
        row.mbps = moved[name] / seconds[name] / 1e6
        row.cpu_per_gib = cpu[name] / (2 * moved[name] / 2**30)


async def measure_rest(row: Row, pid: int, port: int, args: argparse.Namespace) -> None:
    row.concurrent_ok = await concurrent_echoes(port, args.concurrent)
    await asyncio.sleep(0.5)
    row.rss_concurrent = memory_kib(pid)["VmRSS"] / 1024
    start = time.perf_counter()
    row.halfclose_ok = await halfclose_echoes(port, args.halfclose)
    row.notes.append(f"half-close run {time.perf_counter() - start:.1f} s")
    row.rss_halfclose = memory_kib(pid)["VmRSS"] / 1024
    await asyncio.sleep(args.settle)
    row.rss_settled = memory_kib(pid)["VmRSS"] / 1024


def print_table(rows: list[Row], args: argparse.Namespace) -> None:
    print(
        f"\n{args.connections} new connections one after another: p50 / p99 (ms), the "
        f"forwarder's and the sandbox's ({args.sandbox_loop}) CPU ms per connection; one "
        f"connection, {args.mb} MiB each way: MB/s each way and CPU s per GiB moved;\n"
        f"RSS (MiB) after the {args.connections} connections, after {args.concurrent} at once "
        f"(ok: echoed intact), after {args.halfclose} concurrent 1 MB half-closed echoes "
        f"(ok: complete) and {args.settle:g} s later"
    )
    head = (
        f"  {'':<30}{'p50':>7}{'p99':>7}{'cpu/c':>7}{'srv/c':>7}{'MB/s':>7}{'cpu/GiB':>8}{'RSS':>7}"
        f"{'conc ok':>9}{'RSS':>7}{'half ok':>9}{'RSS':>7}{'later':>7}"
    )
    print(head)
    for r in rows:
        print(
            f"  {r.name:<30}{r.p50:7.2f}{r.p99:7.2f}{r.cpu_per_conn:7.2f}"
            f"{r.server_per_conn:7.2f}"
            f"{r.mbps:7.0f}{r.cpu_per_gib:8.2f}"
            f"{r.rss_serial:7.1f}{r.concurrent_ok:>9}{r.rss_concurrent:7.1f}"
            f"{r.halfclose_ok:>9}{r.rss_halfclose:7.1f}{r.rss_settled:7.1f}"
        )
    for r in rows:
        if r.notes:
            print(f"  {r.name}: " + "; ".join(r.notes))


def _server_of(kubeconfig: str) -> str:
    import yaml

    server: str = yaml.safe_load(Path(kubeconfig).read_text())["clusters"][0]["cluster"]["server"]
    return server


@contextlib.asynccontextmanager
async def delayed(kubeconfig: str, rtt_ms: float) -> AsyncIterator[str]:
    """A kubeconfig whose API server is `rtt_ms` away (the kubeconfig itself for 0)."""
    if rtt_ms <= 0:
        yield kubeconfig
        return
    from delayproxy import kubeconfig_via

    server = _server_of(kubeconfig)
    host, port = server.removeprefix("https://").rsplit(":", 1)
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        str(Path(__file__).with_name("delayproxy.py")),
        *(host, port, str(rtt_ms)),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None
        proxy_port = int(await asyncio.wait_for(proc.stdout.readline(), 30))
        path = Path(kubeconfig).with_name(f"kubeconfig-rtt{rtt_ms:g}")
        yield str(kubeconfig_via(Path(kubeconfig), path, proxy_port))
    finally:
        if proc.stdin is not None:
            proc.stdin.close()
        try:
            await asyncio.wait_for(proc.wait(), 10)
        except TimeoutError:
            proc.kill()
            await proc.wait()


async def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--mb", type=int, default=200)
    parser.add_argument("--connections", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--concurrent", type=int, default=1000)
    parser.add_argument("--halfclose", type=int, default=500)
    parser.add_argument("--settle", type=float, default=60.0)
    parser.add_argument("--rtt", type=float, default=0.0, help="ms between forwarders and API")
    parser.add_argument("--only", choices=("kubectl", "portfwd"), default=None)
    parser.add_argument("--protocols", default="auto,spdy,v4", help="portfwd protocols to measure")
    parser.add_argument("--uvloop", action="store_true", help="also portfwd auto on asyncio")
    parser.add_argument("--latency-only", action="store_true")
    parser.add_argument(
        "--sandbox-loop",
        choices=sorted(SANDBOX_LOOPS),
        default="asyncio",
        help="the event loop the sandbox (the server side) runs on",
    )
    args = parser.parse_args()
    have_kubectl = shutil.which("kubectl") is not None
    print(
        f"python {sys.version.split()[0]}, {kubectl_version() if have_kubectl else 'no kubectl'}"
        f", {os.cpu_count()} CPUs, loopback, sandbox over TLS, svc/echo, API server RTT "
        f"{args.rtt:g} ms, sandbox on {args.sandbox_loop}"
    )
    async with (
        sandbox_with_pid(args.sandbox_loop) as (direct_kubeconfig, _direct, server),
        delayed(direct_kubeconfig, args.rtt) as kubeconfig,
    ):
        starters: list[tuple[str, contextlib.AbstractAsyncContextManager[tuple[int, int]]]] = []
        if have_kubectl and args.only != "portfwd":
            starters.append(("kubectl (SPDY over WebSocket)", kubectl(kubeconfig, websockets=True)))
            starters.append(("kubectl (plain SPDY)", kubectl(kubeconfig, websockets=False)))
        if args.only != "kubectl":
            for protocol in args.protocols.split(","):
                starters.append((f"portfwd --protocol {protocol}", portfwd(kubeconfig, protocol)))
            if args.uvloop:
                starters.append(
                    ("portfwd auto, asyncio loop", portfwd(kubeconfig, "auto", use_uvloop=False))
                )
        async with contextlib.AsyncExitStack() as stack:
            running: dict[str, tuple[int, int]] = {}
            for name, starter in starters:
                running[name] = await stack.enter_async_context(starter)
            samples, cpu, served = await measure_latency(
                running, args.connections, args.rounds, server
            )
            rows = {
                name: Row(
                    name,
                    percentile(samples[name], 50),
                    percentile(samples[name], 99),
                    cpu_per_conn=cpu[name],
                    server_per_conn=served[name],
                )
                for name in running
            }
            for name, (pid, _port) in running.items():
                rows[name].rss_serial = memory_kib(pid)["VmRSS"] / 1024
            if not args.latency_only:
                await measure_throughput(rows, running, args)
                for name, (pid, port) in running.items():
                    await measure_rest(rows[name], pid, port, args)
                    print(f"  measured {name}", file=sys.stderr)
    print_table(list(rows.values()), args)


if __name__ == "__main__":
    asyncio.run(main())
