"""Data-plane figures for `portfwd forward`, printed in one run (a script, not a test).

Three processes, like a real setup: the sandbox cluster (API server + kubelet side + echo
backends, TLS), one headless `portfwd forward` (the thing measured), and this client.

1. Throughput: one TCP connection streams random bytes to the echo backend while reading the
   echo back, through the forward and then directly to an identical echo backend.
2. New-connection latency: 500 fresh connections one after another, each sending a small
   length-delimited request (4-byte length + 100 bytes) and reading the echo, through the
   forward and directly; p50 / p99.
3. Memory: VmRSS / VmHWM of a `portfwd forward` process holding 5 active forwards, and its
   CPU use while idle (no wake-ups when nothing moves).

Usage: .venv/bin/python bench/throughput.py [--mb 200]
Note: the sandbox emulates the kubelet in Python in the same process as the backend, so the
"through portfwd" path also pays for that hop (a real cluster's kubelet is Go).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import signal
import statistics
import struct
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

CHUNK = 256 * 1024
IDLE_SECONDS = 5.0
FORWARDING_RE = re.compile(r"^Forwarding from (\S+):(\d+) -> (\d+)$")

SANDBOX_SCRIPT = """
import asyncio, json, sys
from portfwd.sandbox.cluster import SandboxCluster

async def main():
    async with SandboxCluster() as sb:
        direct = await sb.backends.start_backend("echo", "bench-direct")
        print(json.dumps({"kubeconfig": str(sb.kubeconfig_path), "echo": list(direct)}),
              flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)

RUN(main())
"""
# The event loop the sandbox runs on (bench --sandbox-loop): its API server, kubelet side and
# echo backends are Python, and on asyncio's own loop they take more CPU per connection than
# the forwarder measured; the Go programs they stand for take far less.
SANDBOX_LOOPS = {"asyncio": "asyncio.run", "uvloop": "__import__('uvloop').run"}


@contextlib.asynccontextmanager
async def sandbox_process(loop: str = "asyncio") -> AsyncIterator[tuple[str, tuple[str, int]]]:
    async with sandbox_with_pid(loop) as (kubeconfig, echo, _pid):
        yield kubeconfig, echo


@contextlib.asynccontextmanager
async def sandbox_with_pid(
    loop: str = "asyncio",
) -> AsyncIterator[tuple[str, tuple[str, int], int]]:
    """The sandbox in a child on `loop` (SANDBOX_LOOPS): kubeconfig, the direct echo backend,
    and its pid (for its CPU time)."""
    script = SANDBOX_SCRIPT.replace("RUN(", SANDBOX_LOOPS[loop] + "(")
    async with script_process(script) as (info, proc):
        yield info["kubeconfig"], (info["echo"][0], int(info["echo"][1])), proc.pid


@contextlib.asynccontextmanager
async def script_process(
    script: str,
) -> AsyncIterator[tuple[dict[str, Any], asyncio.subprocess.Process]]:
    """A Python script in a child (a sandbox, so its work does not share the bench's CPU
    time): its first stdout line (JSON) and the process; it ends when its stdin closes."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        script,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None
        info = json.loads(await asyncio.wait_for(proc.stdout.readline(), 60))
        yield info, proc
    finally:
        if proc.stdin is not None:
            proc.stdin.close()
        try:
            await asyncio.wait_for(proc.wait(), 15)
        except TimeoutError:
            proc.kill()
            await proc.wait()


@contextlib.asynccontextmanager
async def forwarder_process(
    argv: list[str],
    count: int,
    *,
    env: dict[str, str] | None = None,
    stop: signal.Signals = signal.SIGINT,
    line_timeout: float = 60,
) -> AsyncIterator[tuple[asyncio.subprocess.Process, list[int]]]:
    """Run a forwarder that prints kubectl's `Forwarding from` lines (portfwd or kubectl) until
    `count` of them arrived -> (process, local ports); stopped with `stop`, then killed."""
    proc = await asyncio.create_subprocess_exec(
        *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL, env=env
    )
    assert proc.stdout is not None

    async def drain(stream: asyncio.StreamReader) -> None:
        while await stream.readline():
            pass

    drainer: asyncio.Task[None] | None = None
    try:
        local: list[int] = []
        while len(local) < count:
            line = (await asyncio.wait_for(proc.stdout.readline(), line_timeout)).decode().strip()
            if not line:
                raise RuntimeError(f"{argv[0]} exited early")
            match = FORWARDING_RE.match(line)
            if match:
                local.append(int(match.group(2)))
        drainer = asyncio.create_task(drain(proc.stdout))  # "Handling connection" lines
        yield proc, local
    finally:
        if proc.returncode is None:
            proc.send_signal(stop)
        try:
            await asyncio.wait_for(proc.wait(), 15)
        except TimeoutError:
            proc.kill()
            await proc.wait()
        if drainer is not None:
            drainer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await drainer


def portfwd_argv(kubeconfig: str, *ports: str) -> list[str]:
    """`portfwd forward svc/echo PORTS...` on loopback, from this interpreter."""
    return [
        sys.executable,
        *("-m", "portfwd", "forward", "--kubeconfig", kubeconfig),
        *("--address", "127.0.0.1", "svc/echo", *ports),
    ]


@contextlib.asynccontextmanager
async def forward_process(kubeconfig: str, *ports: str) -> AsyncIterator[tuple[int, list[int]]]:
    """`portfwd forward svc/echo PORTS...` -> (pid, local ports)."""
    async with forwarder_process(portfwd_argv(kubeconfig, *ports), len(ports)) as (proc, local):
        yield proc.pid, local


async def throughput(host: str, port: int, total: int) -> float:
    """MB/s each way (sent and echoed concurrently) over one connection."""
    reader, writer = await asyncio.open_connection(host, port, limit=CHUNK)
    block = os.urandom(CHUNK)

    async def send() -> None:
        remaining = total
        while remaining > 0:
            writer.write(block if remaining >= CHUNK else block[:remaining])
            await writer.drain()
            remaining -= CHUNK

    async def receive() -> None:
        got = 0
        while got < total:
            data = await reader.read(CHUNK)
            if not data:
                raise RuntimeError(f"EOF after {got} bytes")
            got += len(data)

    start = time.perf_counter()
    await asyncio.gather(send(), receive())
    elapsed = time.perf_counter() - start
    writer.close()
    return total / elapsed / 1e6


async def latencies(host: str, port: int, count: int) -> list[float]:
    """Seconds per fresh connection: connect, one 100-byte framed request, its echo, close."""
    body = os.urandom(100)
    request = struct.pack("!I", len(body)) + body
    result = []
    for _ in range(count):
        start = time.perf_counter()
        reader, writer = await asyncio.open_connection(host, port)
        writer.write(request)
        (length,) = struct.unpack("!I", await reader.readexactly(4))
        answer = await reader.readexactly(length)
        result.append(time.perf_counter() - start)
        if answer != body:
            raise RuntimeError("echo mismatch")
        writer.close()
    return result


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * len(ordered)) - 1))
    return ordered[index]


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def memory_kib(pid: int) -> dict[str, int]:
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            fields[key] = int(value.split()[0])
    return fields


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=int, default=200, help="MiB each way for throughput")
    parser.add_argument("--connections", type=int, default=500)
    args = parser.parse_args()
    total = args.mb * 1024 * 1024

    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, loopback, sandbox over TLS")
    async with sandbox_process() as (kubeconfig, direct):
        async with forward_process(kubeconfig, ":80") as (_pid, (port,)):
            await throughput("127.0.0.1", port, 8 * 1024 * 1024)  # warm-up
            via = await throughput("127.0.0.1", port, total)
            plain = await throughput(*direct, total)
            print(f"\nthroughput, one connection, {args.mb} MiB each way at once (MB/s each way)")
            print(f"  direct to the echo backend   {plain:8.0f}")
            print(f"  through portfwd forward      {via:8.0f}   ({via / plain:.0%} of direct)")

            await latencies("127.0.0.1", port, 20)  # warm-up
            fwd_lat = await latencies("127.0.0.1", port, args.connections)
            dir_lat = await latencies(*direct, args.connections)
            print(f"\nnew-connection latency, {args.connections} sequential connections (ms)")
            print("                               p50      p99     mean")
            for name, lat in (("direct", dir_lat), ("through portfwd forward", fwd_lat)):
                ms = [x * 1000 for x in lat]
                print(
                    f"  {name:<26}{percentile(ms, 50):7.2f}  {percentile(ms, 99):7.2f}"
                    f"  {statistics.mean(ms):7.2f}"
                )

        async with forward_process(kubeconfig, *([":80"] * 5)) as (pid, ports):
            idle = memory_kib(pid)
            cpu_before = cpu_seconds(pid)
            await asyncio.sleep(IDLE_SECONDS)
            idle_cpu = (cpu_seconds(pid) - cpu_before) / IDLE_SECONDS
            for p in ports:  # every forward carries some traffic
                await throughput("127.0.0.1", p, 16 * 1024 * 1024)
                await latencies("127.0.0.1", p, 20)
            await asyncio.sleep(0.5)
            used = memory_kib(pid)
            print("\nmemory of one `portfwd forward` process holding 5 active forwards")
            print(f"  VmRSS after start            {idle['VmRSS'] / 1024:8.1f} MiB")
            print(
                f"  VmRSS after traffic on all 5 {used['VmRSS'] / 1024:8.1f} MiB"
                f"   (peak VmHWM {used['VmHWM'] / 1024:.1f} MiB)"
            )
            print(f"  CPU while idle ({IDLE_SECONDS:.0f} s)        {idle_cpu:8.2%}")


if __name__ == "__main__":
    asyncio.run(main())
