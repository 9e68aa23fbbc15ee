"""Does the daemon give memory back after a burst of traffic? RSS at the start, at the peak
of a load, and while idle after it.

Processes: the sandbox cluster, the daemon (`portfwd daemon --detach`, private dirs), this
script as the clients. Load: F forwards to svc/echo (protocols auto, spdy, websocket in
turn), C concurrent clients, each doing echo transfers of 1-10 MB (sent and read back at
once, bytes checked) one after another for S seconds. Then no connection is open for I
seconds: the daemon's RSS should come back near its start (issue 16: 70 -> 449 -> 345 MB
before the fix; the target is within 20 % of the start).

Usage: .venv/bin/python bench/memory_after_load.py [--forwards 4] [--clients 48]
       [--seconds 30] [--idle 30] [--tiny]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

from daemon import daemon  # sibling scripts
from throughput import memory_kib, sandbox_process

from portfwd.daemon.client import DaemonClient
from portfwd.daemon.paths import daemon_paths
from portfwd.engine.model import ForwardSpec
from portfwd.engine.serial import spec_to_dict

PROTOCOLS = ("auto", "spdy", "websocket", "v4")
CHUNK = 64 * 1024


async def add_forwards(env: dict[str, str], kubeconfig: str, count: int) -> list[int]:
    client = await DaemonClient.connect(daemon_paths(env), client="bench")
    try:
        ports = []
        for n in range(count):
            spec = ForwardSpec(
                target="svc/echo",
                remote_port=80,
                namespace="demo",
                kubeconfig=kubeconfig,
                addresses=("127.0.0.1",),
                name=f"echo-{n}",
                protocol=PROTOCOLS[n % len(PROTOCOLS)],
            )
            snap = await client.request("add", spec=spec_to_dict(spec))
            ports.append(int(snap["local_port"]))
        return ports
    finally:
        await client.close()


async def echo(port: int, size: int, rng: random.Random) -> int:
    """One transfer of `size` bytes each way; the bytes echoed back are checked."""
    payload = rng.randbytes(CHUNK)
    reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=CHUNK)
    try:

        async def send() -> None:
            left = size
            while left > 0:
                writer.write(payload[: min(CHUNK, left)])
                await writer.drain()
                left -= CHUNK

        async def receive() -> int:
            got = 0
            while got < size:
                data = await reader.read(CHUNK)
                if not data:
                    raise RuntimeError(f"EOF after {got} of {size} bytes")
                offset = got % CHUNK
                if data != (payload * 2)[offset : offset + len(data)]:
                    raise RuntimeError("echoed bytes differ")
                got += len(data)
            return got

        _, got = await asyncio.wait_for(asyncio.gather(send(), receive()), 120)
        return got
    finally:
        writer.close()


async def load(ports: list[int], clients: int, seconds: float) -> tuple[int, int]:
    """(transfers done, failed)."""
    deadline = time.monotonic() + seconds
    done = failed = 0

    async def client(n: int) -> None:
        nonlocal done, failed
        rng = random.Random(n)
        while time.monotonic() < deadline:
            try:
                await echo(ports[n % len(ports)], rng.randint(1 << 20, 10 << 20), rng)
                done += 1
            except (OSError, RuntimeError, TimeoutError) as exc:
                failed += 1
                print(f"client {n}: {exc}", file=sys.stderr)

    await asyncio.gather(*(client(n) for n in range(clients)))
    return done, failed


async def sample(pid: int, into: list[tuple[float, float]], t0: float) -> None:
    while True:
        into.append((time.monotonic() - t0, memory_kib(pid)["VmRSS"] / 1024))
        await asyncio.sleep(0.25)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--forwards", type=int, default=4)
    parser.add_argument("--clients", type=int, default=48)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--idle", type=float, default=30.0)
    parser.add_argument("--tiny", action="store_true", help="a few seconds (the test suite)")
    parser.add_argument(
        "--hold", type=float, default=0.0, help="keep the daemon this long after (to inspect it)"
    )
    args = parser.parse_args()
    if args.tiny:
        args.forwards, args.clients, args.seconds, args.idle = 2, 3, 1.0, 2.0
    async with sandbox_process() as (kubeconfig, _direct), daemon(kubeconfig) as (env, pid):
        ports = await add_forwards(env, kubeconfig, args.forwards)
        for port in ports:
            await echo(port, 1024, random.Random(0))
        await asyncio.sleep(1)
        start = memory_kib(pid)["VmRSS"] / 1024
        samples: list[tuple[float, float]] = []
        t0 = time.monotonic()
        sampler = asyncio.create_task(sample(pid, samples, t0))
        try:
            done, failed = await load(ports, args.clients, args.seconds)
            load_end = time.monotonic() - t0
            await asyncio.sleep(args.idle)
        finally:
            sampler.cancel()
        peak = max(rss for _, rss in samples)
        after = {}
        for mark in (2, 5, 10, 20, 30, 60):
            if mark <= args.idle:
                after[mark] = next(
                    (rss for t, rss in samples if t >= load_end + mark), samples[-1][1]
                )
        final = samples[-1][1]
        if args.hold:
            print(f"daemon pid {pid}, held for {args.hold:g} s", flush=True)
            await asyncio.sleep(args.hold)
    print(
        f"\n{args.forwards} forwards, {args.clients} clients x {args.seconds:g} s of 1-10 MB"
        f" echoes: {done} transfers, {failed} failed"
    )
    print(f"  RSS MiB: start {start:.1f}, peak {peak:.1f}, after {args.idle:g} s idle {final:.1f}")
    for mark, rss in after.items():
        print(f"    {mark:>3} s after the load: {rss:.1f} MiB ({rss / start:.2f}x the start)")
    print(
        json.dumps(
            {
                "start_mib": start,
                "peak_mib": peak,
                "final_mib": final,
                "after": after,
                "transfers": done,
                "failed": failed,
            }
        )
    )
    if failed:
        raise SystemExit(1)


if __name__ == "__main__":
    asyncio.run(main())
