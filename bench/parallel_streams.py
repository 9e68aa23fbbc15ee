"""Would more processes move more bytes? 20 parallel streams through one forwarder process,
through the same streams spread over two `portfwd forward` processes, and through kubectl.

The question (issue 22): on a loaded 2-core machine one Python thread loses its CPU share
while kubectl's Go runtime runs on both cores. Spreading tunnels over processes can be had
without writing it first: `portfwd-x2` runs two `portfwd forward` processes and splits the
streams between them, an upper bound of what a multi-process engine would gain (no
hand-off between processes to pay for). Modes, interleaved per round (order rotates):

- `kubectl`: one `kubectl port-forward` (SPDY over WebSocket, its default);
- `portfwd`: one `portfwd forward` process;
- `portfwd-x2`: two `portfwd forward` processes, half the streams each.

Each stream sends `--mb` MiB and reads the echo back at once; printed: aggregate MB/s each
way (all bytes / wall time) and CPU seconds of the forwarder process(es) per GiB moved.
`--stress N` runs `stress-ng --cpu N` for the whole run (the loaded machine).
The sandbox (API server, kubelet side, echo backend) is one Python process in every mode.

Usage: .venv/bin/python bench/parallel_streams.py [--streams 20] [--mb 8] [--rounds 3]
                                                  [--stress 2]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shutil
import statistics
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from kubectl_vs_portfwd import kubectl_process  # sibling scripts, not a package
from throughput import cpu_seconds, forward_process, sandbox_process, throughput


@contextlib.asynccontextmanager
async def forwarders(mode: str, kubeconfig: str) -> AsyncIterator[list[tuple[int, int]]]:
    """The mode's forwarder process(es) -> [(pid, local port)]."""
    async with contextlib.AsyncExitStack() as stack:
        if mode == "kubectl":
            pid, (port,) = await stack.enter_async_context(
                kubectl_process(kubeconfig, ":80", websockets=True)
            )
            yield [(pid, port)]
            return
        count = 2 if mode == "portfwd-x2" else 1
        found = []
        for _ in range(count):
            pid, (port,) = await stack.enter_async_context(forward_process(kubeconfig, ":80"))
            found.append((pid, port))
        yield found


async def one_mode(mode: str, kubeconfig: str, streams: int, total: int) -> tuple[float, float]:
    """(aggregate MB/s each way, forwarder CPU s per GiB each way)."""
    async with forwarders(mode, kubeconfig) as procs:
        ports = [port for _, port in procs]
        await throughput("127.0.0.1", ports[0], 1 << 20)  # warm-up (and resolution)
        cpu0 = sum(cpu_seconds(pid) for pid, _ in procs)
        started = time.perf_counter()
        await asyncio.gather(
            *(throughput("127.0.0.1", ports[i % len(ports)], total) for i in range(streams))
        )
        wall = time.perf_counter() - started
        cpu = sum(cpu_seconds(pid) for pid, _ in procs) - cpu0
    moved = streams * total
    return moved / wall / 1e6, cpu / (moved / (1 << 30))


@contextlib.asynccontextmanager
async def stress(cpus: int) -> AsyncIterator[None]:
    if not cpus:
        yield
        return
    if shutil.which("stress-ng") is None:
        sys.exit("stress-ng is not on PATH")
    proc = await asyncio.create_subprocess_exec(
        *("stress-ng", "--cpu", str(cpus), "--timeout", "3600s", "--quiet"),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        yield
    finally:
        proc.terminate()
        try:
            await asyncio.wait_for(proc.wait(), 15)
        except TimeoutError:
            proc.kill()
            await proc.wait()


async def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--streams", type=int, default=20)
    parser.add_argument("--mb", type=int, default=8, help="MiB each way per stream")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--stress", type=int, default=0, help="stress-ng --cpu N meanwhile")
    parser.add_argument("--no-kubectl", action="store_true")
    args = parser.parse_args()
    modes = ["portfwd", "portfwd-x2"] + ([] if args.no_kubectl else ["kubectl"])
    if "kubectl" in modes and shutil.which("kubectl") is None:
        modes.remove("kubectl")
    results: dict[str, list[tuple[float, float]]] = {m: [] for m in modes}
    print(
        f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, loadavg "
        f"{os.getloadavg()[0]:.1f}, stress-ng --cpu {args.stress}; {args.streams} streams of "
        f"{args.mb} MiB each way; {args.rounds} round(s), modes interleaved"
    )
    async with sandbox_process() as (kubeconfig, _direct), stress(args.stress):
        for rnd in range(args.rounds):
            order = modes[rnd % len(modes) :] + modes[: rnd % len(modes)]
            for mode in order:
                results[mode].append(await one_mode(mode, kubeconfig, args.streams, args.mb << 20))
    print(f"\n{'mode':<12}{'MB/s each way (per round)':<36}{'median':>8}{'CPU s/GiB':>11}")
    for mode in modes:
        rates = [r for r, _ in results[mode]]
        cpu = statistics.median(c for _, c in results[mode])
        shown = " ".join(f"{r:6.1f}" for r in rates)
        print(f"{mode:<12}{shown:<36}{statistics.median(rates):8.1f}{cpu:11.2f}")
    if "kubectl" in results:
        base = results["kubectl"]
        for mode in ("portfwd", "portfwd-x2"):
            ratios = [a / b for (a, _), (b, _) in zip(results[mode], base, strict=True)]
            print(f"{mode} / kubectl, per round: " + " ".join(f"{r:.2f}" for r in ratios))


if __name__ == "__main__":
    asyncio.run(main())
