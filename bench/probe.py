"""What the pod-port probe (`--probe`) costs the traffic it watches: throughput, small-request
rate and the forwarder's memory with no probe, an HTTP probe every second, and an HTTP probe
every second whose answer is 1 TiB long (it must read only the status line), in one run.

Three headless `portfwd forward --address 127.0.0.1 svc/web :80` processes against the
sandbox, rounds interleaved; the client uses one keep-alive connection per measurement, on
the same pod session the probe's streams share.

Usage: .venv/bin/python bench/probe.py [--mb 256] [--requests 2000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys

from httplog import big, small  # sibling scripts, not a package
from throughput import cpu_seconds, forwarder_process, memory_kib, sandbox_process

HUGE = 1 << 40


def argv(kubeconfig: str, probe: str | None) -> list[str]:
    return [
        sys.executable,
        *("-m", "portfwd", "forward", "--kubeconfig", kubeconfig, "--address", "127.0.0.1"),
        *(["--probe", probe, "--probe-interval", "1s"] if probe else []),
        *("svc/web", ":80"),
    ]


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
        forwarder_process(argv(kubeconfig, None), 1) as (off, off_ports),
        forwarder_process(argv(kubeconfig, "http:/healthz"), 1) as (on, on_ports),
        forwarder_process(argv(kubeconfig, f"http:/bytes/{HUGE}"), 1) as (huge, huge_ports),
    ):
        runners = [
            ("no probe", off.pid, off_ports[0]),
            ("--probe http:/healthz, every 1 s", on.pid, on_ports[0]),
            ("--probe http:/bytes/1TiB, every 1 s", huge.pid, huge_ports[0]),
        ]
        for _ in range(args.rounds):
            for label, pid, port in runners:
                row = rows.setdefault(label, {"mbs": [], "cpu_gib": [], "rps": []})
                cpu = cpu_seconds(pid)
                seconds = await big(port, total)
                used = cpu_seconds(pid) - cpu
                row["mbs"].append(total / seconds / 1e6)
                row["cpu_gib"].append(used / (total / (1 << 30)))
                seconds = await small(port, args.requests)
                row["rps"].append(args.requests / seconds)
        peaks = {label: memory_kib(pid).get("VmHWM", 0) for label, pid, _ in runners}
    print(
        f"Probe cost ({args.mb} MiB of /bytes/N, {args.requests} small requests, "
        f"{args.rounds} interleaved rounds; medians; VmHWM at the end)"
    )
    print()
    print("| forwarder | MB/s | CPU s per GiB | small req/s | VmHWM MiB |")
    print("| --- | --- | --- | --- | --- |")
    for label, row in rows.items():
        print(
            f"| {label} | {statistics.median(row['mbs']):.0f} | "
            f"{statistics.median(row['cpu_gib']):.2f} | {statistics.median(row['rps']):.0f} | "
            f"{peaks[label] / 1024:.0f} |"
        )


if __name__ == "__main__":
    asyncio.run(main())
