"""Adding many forwards to a daemon: how long until all are active, and whether the time per
forward stays flat as the session grows (each ok reply waits for the session file to hold
the forward, so this is also the cost of durable acknowledgements).

Processes: the sandbox cluster, the daemon (`portfwd daemon --detach`, private config and
runtime dirs), this script as the client. Two runs against fresh daemons:

1. `concurrent`: N `add`s (svc/echo :80, started) over one connection, C in flight at once
   (32 is the daemon's per-client limit, what a script or `up` gets); time until every
   forward is active;
2. `sequential`: N `add`s one after another (`portfwd add` in a shell loop, minus the
   interpreter start), stopped forwards, so the figure is the daemon's and the disk's.

For each, ms per forward within windows of the count (0-50, 50-100, ..., up to N): flat
windows mean linear. `--tiny` runs a few forwards (the test suite does, so this script
keeps working).

Usage: .venv/bin/python bench/add_many.py [--forwards 1000] [--concurrency 32] [--tiny]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

from daemon import daemon  # sibling scripts
from throughput import sandbox_process

from portfwd.daemon.client import DaemonClient
from portfwd.daemon.paths import daemon_paths
from portfwd.engine.model import ForwardSpec
from portfwd.engine.serial import spec_to_dict

WINDOWS = (0, 50, 100, 200, 500, 1000, 2000, 5000)


def windows(count: int) -> list[tuple[int, int]]:
    edges = [w for w in WINDOWS if w < count] + [count]
    return list(itertools.pairwise(edges))


async def add_all(
    env: dict[str, str], kubeconfig: str, count: int, concurrency: int, start: bool
) -> tuple[list[float], float]:
    """(seconds at which the k-th ok reply arrived, seconds until all were active)."""
    client = await DaemonClient.connect(daemon_paths(env), client="bench")
    try:
        slots = asyncio.Semaphore(concurrency)
        done: list[float] = []
        t0 = time.perf_counter()

        async def add(n: int) -> None:
            spec = ForwardSpec(
                target="svc/echo",
                remote_port=80,
                namespace="demo",
                kubeconfig=kubeconfig,
                addresses=("127.0.0.1",),
                name=f"echo-{n}",
            )
            async with slots:
                await client.request("add", spec=spec_to_dict(spec), start=start)
            done.append(time.perf_counter() - t0)

        await asyncio.gather(*(add(n) for n in range(count)))
        if start:
            while True:
                snaps = await client.request("snapshot")
                if sum(1 for s in snaps if s["state"] == "active") == count:
                    break
                bad = [s for s in snaps if s["state"] == "error"]
                if bad:
                    raise SystemExit(f"a forward failed: {bad[0].get('reason')}")
                await asyncio.sleep(0.05)
        return sorted(done), time.perf_counter() - t0
    finally:
        await client.close()


def per_forward(done: list[float], count: int) -> list[tuple[str, float]]:
    rows = []
    for low, high in windows(count):
        began = done[low - 1] if low else 0.0
        rows.append((f"{low}-{high}", (done[high - 1] - began) / (high - low) * 1000))
    return rows


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--forwards", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--tiny", action="store_true", help="a few forwards (the test suite)")
    args = parser.parse_args()
    count = 6 if args.tiny else args.forwards
    report: dict[str, object] = {"forwards": count}
    async with sandbox_process() as (kubeconfig, _direct):
        for name, concurrency, start in (
            ("concurrent", args.concurrency, True),
            ("sequential", 1, False),
        ):
            async with daemon(kubeconfig) as (env, _pid):
                done, total = await add_all(env, kubeconfig, count, concurrency, start)
            rows = per_forward(done, count)
            what = "active" if start else "saved"
            print(f"\n{name}: {count} forwards {what} in {total:.2f} s ({concurrency} in flight)")
            for window, ms in rows:
                print(f"  forwards {window:>10}: {ms:7.2f} ms per forward")
            report[name] = {"total_s": total, "ms_per_forward": rows}
    print(json.dumps(report))


if __name__ == "__main__":
    asyncio.run(main())
