"""Out of file descriptors: the CPU a `portfwd forward` spends while connections wait for them.

`portfwd forward` runs with RLIMIT_NOFILE lowered to `--limit` and is held under `--held`
connections (more than it has descriptors for). Accepting pauses with a backoff instead of
spinning; this prints the CPU it used over `--seconds` of waiting (the figure the fault test
used to assert), beside the same forwarder's CPU while idle.

Usage: .venv/bin/python bench/emfile.py [--protocols spdy,v4] [--limit 256] [--held 300]
       [--seconds 5]
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from throughput import cpu_seconds, sandbox_process  # a sibling script


async def measure(kubeconfig: str, protocol: str, args: argparse.Namespace) -> tuple[float, float]:
    """(CPU share while idle, CPU share while out of descriptors) of one forwarder."""

    def lower() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (args.limit, args.limit))

    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        *("-m", "portfwd", "forward", "--kubeconfig", kubeconfig, "--protocol", protocol),
        *("--address", "127.0.0.1", "svc/echo", ":80"),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        preexec_fn=lower,
    )
    writers: list[asyncio.StreamWriter] = []
    drainer: asyncio.Task[None] | None = None
    try:
        assert proc.stdout is not None and proc.stderr is not None
        line = (await asyncio.wait_for(proc.stdout.readline(), 60)).decode()
        port = int(line.split(":")[1].split()[0])
        stdout = proc.stdout

        async def drain() -> None:  # "Handling connection" lines: a full pipe would block it
            while await stdout.readline():
                pass

        drainer = asyncio.create_task(drain())
        before = cpu_seconds(proc.pid)
        await asyncio.sleep(args.seconds)
        idle = (cpu_seconds(proc.pid) - before) / args.seconds
        for _ in range(args.held):
            _, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 10)
            writer.write(b"x")
            writers.append(writer)
        async with asyncio.timeout(30):
            while b"too many open files" not in await proc.stderr.readline():
                pass
        await asyncio.sleep(1)  # the connections already accepted settle
        before = cpu_seconds(proc.pid)
        await asyncio.sleep(args.seconds)
        waiting = (cpu_seconds(proc.pid) - before) / args.seconds
        return idle, waiting
    finally:
        for writer in writers:
            writer.close()
        if proc.returncode is None:
            proc.send_signal(2)
        try:
            await asyncio.wait_for(proc.wait(), 15)
        except TimeoutError:
            proc.kill()
            await proc.wait()
        if drainer is not None:
            drainer.cancel()
            await asyncio.gather(drainer, return_exceptions=True)


async def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--protocols", default="spdy,v4")
    parser.add_argument("--limit", type=int, default=256)
    parser.add_argument("--held", type=int, default=300)
    parser.add_argument("--seconds", type=float, default=5.0)
    args = parser.parse_args(argv)
    print(f"RLIMIT_NOFILE {args.limit}, {args.held} connections held, {args.seconds:g} s each")
    print(f"  {'protocol':<10}{'CPU idle':>10}{'CPU out of fds':>16}")
    async with sandbox_process() as (kubeconfig, _direct):
        for protocol in args.protocols.split(","):
            idle, waiting = await measure(kubeconfig, protocol, args)
            print(f"  {protocol:<10}{idle:>10.1%}{waiting:>16.1%}")


if __name__ == "__main__":
    asyncio.run(main())
