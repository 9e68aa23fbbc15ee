"""`kubectl port-forward` next to `portfwd forward`, against the same sandbox service, one run.

Same setup as bench/throughput.py (whose helpers this reuses): the sandbox cluster in its own
process (API server, kubelet side and echo backends, TLS), each forwarder in its own process,
this script as the client. Forwarders measured, all to svc/echo port 80:

- kubectl port-forward, SPDY tunnelled over a WebSocket (kubectl 1.31+'s default);
- kubectl port-forward, plain SPDY/3.1 (KUBECTL_PORT_FORWARD_WEBSOCKETS=false);
- portfwd forward, its default (`--protocol auto`: SPDY over a WebSocket, one session per
  pod shared by every connection, as kubectl).

Figures: MB/s each way over one connection (echo, sent and read at once); p50 / p99 / mean of
N fresh connections one after another (connect, 100-byte framed request, echo, close); VmRSS
and peak VmHWM of each forwarder process after its runs.

Usage: .venv/bin/python bench/kubectl_vs_portfwd.py [--mb 100] [--connections 300]
Note: the sandbox's kubelet side is Python, in the same process as the backends, so every
forwarder also pays for that hop (a real cluster's kubelet is Go).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shutil
import signal
import statistics
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from throughput import (  # a sibling script, not a package
    forward_process,
    forwarder_process,
    latencies,
    memory_kib,
    percentile,
    sandbox_process,
    throughput,
)


@contextlib.asynccontextmanager
async def kubectl_process(
    kubeconfig: str, *ports: str, websockets: bool
) -> AsyncIterator[tuple[int, list[int]]]:
    """`kubectl port-forward svc/echo PORTS...` -> (pid, local ports)."""
    env = {**os.environ, "KUBECTL_PORT_FORWARD_WEBSOCKETS": "true" if websockets else "false"}
    cache = Path(kubeconfig).parent / "kubectl-cache"
    argv = [
        *("kubectl", "--kubeconfig", kubeconfig, "--cache-dir", str(cache)),
        *("port-forward", "--address", "127.0.0.1", "svc/echo", *ports),
    ]
    async with forwarder_process(argv, len(ports), env=env, stop=signal.SIGTERM) as (proc, local):
        yield proc.pid, local


def kubectl_version() -> str:
    try:
        out = subprocess.run(
            ["kubectl", "version", "--client", "-o", "json"],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return "kubectl ?"
    marker = '"gitVersion": "'
    start = out.find(marker)
    return "kubectl " + (out[start + len(marker) :].split('"', 1)[0] if start >= 0 else "?")


async def measure(port: int, total: int, connections: int) -> tuple[float, list[float]]:
    await throughput("127.0.0.1", port, 8 * 1024 * 1024)  # warm-up
    mbps = await throughput("127.0.0.1", port, total)
    await latencies("127.0.0.1", port, 20)  # warm-up
    lat = await latencies("127.0.0.1", port, connections)
    return mbps, lat


async def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--mb", type=int, default=100, help="MiB each way for throughput")
    parser.add_argument("--connections", type=int, default=300)
    args = parser.parse_args()
    if shutil.which("kubectl") is None:
        sys.exit("kubectl is not on PATH")
    total = args.mb * 1024 * 1024

    print(
        f"python {sys.version.split()[0]}, {kubectl_version()}, {os.cpu_count()} CPUs, "
        "loopback, sandbox over TLS, svc/echo"
    )
    rows: list[tuple[str, float, list[float], dict[str, int]]] = []
    async with sandbox_process() as (kubeconfig, direct):
        plain = await throughput(*direct, total)
        direct_lat = await latencies(*direct, args.connections)
        forwarders = (
            ("kubectl (SPDY over WebSocket)", kubectl_process(kubeconfig, ":80", websockets=True)),
            ("kubectl (plain SPDY)", kubectl_process(kubeconfig, ":80", websockets=False)),
            ("portfwd forward", forward_process(kubeconfig, ":80")),
        )
        for name, starter in forwarders:
            async with starter as (pid, (port,)):
                mbps, lat = await measure(port, total, args.connections)
                rows.append((name, mbps, lat, memory_kib(pid)))

    print(f"\none connection, {args.mb} MiB each way at once (MB/s each way);")
    print(f"{args.connections} new connections one after another (ms); RSS of the forwarder (MiB)")
    print(f"  {'':<31}{'MB/s':>7}{'p50':>8}{'p99':>8}{'mean':>8}{'VmRSS':>9}{'VmHWM':>9}")
    ms = [x * 1000 for x in direct_lat]
    print(
        f"  {'direct to the echo backend':<31}{plain:7.0f}{percentile(ms, 50):8.2f}"
        f"{percentile(ms, 99):8.2f}{statistics.mean(ms):8.2f}{'-':>9}{'-':>9}"
    )
    for name, mbps, lat, mem in rows:
        ms = [x * 1000 for x in lat]
        print(
            f"  {name:<31}{mbps:7.0f}{percentile(ms, 50):8.2f}{percentile(ms, 99):8.2f}"
            f"{statistics.mean(ms):8.2f}{mem['VmRSS'] / 1024:9.1f}{mem['VmHWM'] / 1024:9.1f}"
        )


if __name__ == "__main__":
    asyncio.run(main())
