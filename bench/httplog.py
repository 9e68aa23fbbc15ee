"""What the HTTP request log costs: throughput and the forwarder's CPU per GiB with
`--http-log` on and off, side by side in one run (rounds interleaved).

Two headless `portfwd forward --address 127.0.0.1 svc/web :80` processes against the sandbox
(one with --http-log), and this client on one keep-alive connection per round:
1. big responses: `GET /bytes/N` repeated until --mb MiB came through: MB/s and the forwarder's
   CPU seconds per GiB;
2. small requests: --requests `GET /` one after another: requests per second and the
   forwarder's CPU milliseconds per 1,000 requests (where the log's per-request work shows).

Usage: .venv/bin/python bench/httplog.py [--mb 256] [--requests 2000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time

from throughput import (  # a sibling script, not a package
    cpu_seconds,
    forwarder_process,
    sandbox_process,
)

RESPONSE = 16 * 1024 * 1024


def argv(kubeconfig: str, log: bool) -> list[str]:
    return [
        sys.executable,
        *("-m", "portfwd", "forward", "--kubeconfig", kubeconfig, "--address", "127.0.0.1"),
        *(["--http-log"] if log else []),
        *("svc/web", ":80"),
    ]


async def _response(reader: asyncio.StreamReader) -> int:
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    remaining = length
    while remaining:
        chunk = await reader.read(min(remaining, 1 << 20))
        if not chunk:
            raise ConnectionError("the response ended early")
        remaining -= len(chunk)
    return length


async def big(port: int, total: int) -> float:
    """Seconds to receive `total` bytes of /bytes/N responses on one connection."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=1 << 20)
    size = min(RESPONSE, total)
    start = time.perf_counter()
    got = 0
    try:
        while got < total:
            writer.write(f"GET /bytes/{size} HTTP/1.1\r\nHost: web\r\n\r\n".encode())
            got += await _response(reader)
        return time.perf_counter() - start
    finally:
        writer.close()


async def small(port: int, count: int) -> float:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    start = time.perf_counter()
    try:
        for _ in range(count):
            writer.write(b"GET / HTTP/1.1\r\nHost: web\r\n\r\n")
            await _response(reader)
        return time.perf_counter() - start
    finally:
        writer.close()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=int, default=256)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    total = args.mb * 1024 * 1024
    rows: dict[str, dict[str, list[float]]] = {}
    async with (
        sandbox_process() as (kubeconfig, _echo),
        forwarder_process(argv(kubeconfig, False), 1) as (off, off_ports),
        forwarder_process(argv(kubeconfig, True), 1) as (on, on_ports),
    ):
        runners = [
            ("--http-log off", off.pid, off_ports[0]),
            ("--http-log on", on.pid, on_ports[0]),
        ]
        for _ in range(args.rounds):
            for label, pid, port in runners:
                row = rows.setdefault(label, {"mbs": [], "cpu_gib": [], "rps": [], "cpu_k": []})
                cpu = cpu_seconds(pid)
                seconds = await big(port, total)
                used = cpu_seconds(pid) - cpu
                row["mbs"].append(total / seconds / 1e6)
                row["cpu_gib"].append(used / (total / (1 << 30)))
                cpu = cpu_seconds(pid)
                seconds = await small(port, args.requests)
                used = cpu_seconds(pid) - cpu
                row["rps"].append(args.requests / seconds)
                row["cpu_k"].append(used * 1000 / args.requests * 1000)
    print(
        f"HTTP request log cost ({args.mb} MiB of /bytes/N, {args.requests} small requests, "
        f"{args.rounds} interleaved rounds; medians)"
    )
    print()
    print("| forwarder | MB/s | CPU s per GiB | small req/s | CPU ms per 1,000 req |")
    print("| --- | --- | --- | --- | --- |")
    for label, row in rows.items():
        print(
            f"| portfwd forward {label} | {statistics.median(row['mbs']):.0f} | "
            f"{statistics.median(row['cpu_gib']):.2f} | {statistics.median(row['rps']):.0f} | "
            f"{statistics.median(row['cpu_k']):.0f} |"
        )


if __name__ == "__main__":
    asyncio.run(main())
