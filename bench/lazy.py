"""Lazy forwards against eager ones (issue 20 §2): what N forwards nobody uses cost the cluster
and the daemon, and what the first connection to an idle forward costs.

Processes: the sandbox cluster in this process (so its counters are read directly: every API
request, watches open, port-forward tunnels open), the daemon (`portfwd daemon --detach`, a
private config and runtime dir) holding the forwards. The topology has N pods `p0..pN-1`
(echo backends), one forward each (`pod/pK 9000`: N targets, as N services would be), so no
watch or session is shared between forwards. For each mode, against a fresh sandbox and
daemon:

1. add the N forwards (eager: started; lazy: `lazy`, idle after `--idle-after`), until all
   are active (eager) or idle (lazy): API requests that took;
2. a quiet window of W seconds: API requests during it, watches and tunnels open at its end,
   the daemon's RSS;
3. first connections: one at a time to M of the forwards, the time from connect to the
   first echoed bytes (p50, max); for lazy that is the wake (resolve, tunnel, check), for
   eager a connection on a tunnel already open. Lazy also: a second connection right after
   (the tunnel now open).

`--tiny` runs 3 forwards with short windows (the test suite does, so this keeps working).

Usage: .venv/bin/python bench/lazy.py [--forwards 50] [--window 10] [--firsts 10] [--tiny]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

from daemon import daemon  # sibling scripts
from throughput import memory_kib

from portfwd.daemon.client import DaemonClient
from portfwd.daemon.paths import daemon_paths
from portfwd.engine.model import ForwardSpec
from portfwd.engine.serial import spec_to_dict
from portfwd.sandbox.cluster import SandboxCluster

NS = "bench"


def topology(count: int) -> dict[str, Any]:
    pods = [
        {
            "name": f"p{i}",
            "labels": {"app": f"p{i}"},
            "ports": [{"name": "echo", "containerPort": 9000, "backend": "echo"}],
        }
        for i in range(count)
    ]
    return {"namespaces": [{"name": NS, "pods": pods}]}


async def echo_ms(port: int) -> float:
    """Connect, send 4 bytes, read them back: milliseconds until they are back."""
    t0 = time.perf_counter()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(b"ping")
        await writer.drain()
        await asyncio.wait_for(reader.readexactly(4), 30)
    finally:
        writer.close()
    return (time.perf_counter() - t0) * 1000


async def settled(client: DaemonClient, count: int, state: str) -> None:
    async with asyncio.timeout(120):
        while True:
            snaps = await client.request("snapshot")
            if sum(1 for s in snaps if s["state"] == state) == count:
                return
            bad = [s for s in snaps if s["state"] == "error"]
            if bad:
                raise SystemExit(f"a forward failed: {bad[0]['reason']}")
            await asyncio.sleep(0.1)


async def one_mode(lazy: bool, args: argparse.Namespace) -> dict[str, Any]:
    async with SandboxCluster(topology(args.forwards)) as sb:
        kubeconfig = str(sb.kubeconfig_path)
        async with daemon(kubeconfig) as (env, pid):
            client = await DaemonClient.connect(daemon_paths(env), client="bench")
            try:
                before = sb.api_requests
                ports = []
                for i in range(args.forwards):
                    spec = ForwardSpec(
                        target=f"pod/p{i}",
                        remote_port=9000,
                        namespace=NS,
                        kubeconfig=kubeconfig,
                        addresses=("127.0.0.1",),
                        name=f"p{i}",
                        lazy=lazy,
                        idle_after=args.idle_after,
                    )
                    snap = await client.request("add", spec=spec_to_dict(spec))
                    ports.append(int(snap["local_port"]))
                await settled(client, args.forwards, "idle" if lazy else "active")
                setup = sb.api_requests - before
                quiet_from = sb.api_requests
                await asyncio.sleep(args.window)
                figures: dict[str, Any] = {
                    "setup requests": setup,
                    "requests in window": sb.api_requests - quiet_from,
                    "watches open": sb.store.watches,
                    "tunnels open": sb.open_tunnels,
                    "daemon RSS MiB": memory_kib(pid)["VmRSS"] / 1024,
                }
                firsts, seconds = [], []
                for port in ports[: args.firsts]:
                    firsts.append(await echo_ms(port))
                    seconds.append(await echo_ms(port))
                figures["first conn p50 ms"] = statistics.median(firsts)
                figures["first conn max ms"] = max(firsts)
                figures["next conn p50 ms"] = statistics.median(seconds)
                return figures
            finally:
                await client.close()


def table(rows: dict[str, dict[str, Any]]) -> str:
    keys = list(next(iter(rows.values())))
    lines = [f"{'':<22}" + "".join(f"{mode:>12}" for mode in rows)]
    for key in keys:
        cells = []
        for figures in rows.values():
            value = figures[key]
            cells.append(f"{value:>12.1f}" if isinstance(value, float) else f"{value:>12}")
        lines.append(f"{key:<22}" + "".join(cells))
    return "\n".join(lines)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--forwards", type=int, default=50)
    parser.add_argument("--window", type=float, default=10.0, help="quiet window, seconds")
    parser.add_argument("--firsts", type=int, default=10, help="forwards connected to")
    parser.add_argument("--idle-after", type=float, default=600.0)
    parser.add_argument("--tiny", action="store_true")
    args = parser.parse_args()
    if args.tiny:
        args.forwards, args.window, args.firsts = 3, 0.5, 2
    args.firsts = min(args.firsts, args.forwards)
    rows = {}
    for mode in ("eager", "lazy"):
        rows[mode] = await one_mode(mode == "lazy", args)
    print(f"{args.forwards} forwards (pod/pK, one pod each), quiet window {args.window:g} s")
    print(table(rows))


if __name__ == "__main__":
    asyncio.run(main())
