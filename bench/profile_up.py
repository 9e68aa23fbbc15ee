"""`portfwd up` of a big profile across several clusters: time to all active, and RSS.

Processes: C sandbox clusters (each its own API server, CA and kubeconfig, in its own
process), one `portfwd up` (the thing measured) and this script. The profile has F forwards
spread evenly over the clusters (each forward names its cluster's kubeconfig), to svc/echo,
svc/web, deploy/api and deploy/echo, all on free local ports.

Figures, median of R runs: seconds from starting `portfwd up` to its last `Forwarding from`
line (every forward bound and its pod resolved), beside `portfwd --version` (the Python
start-up floor) and `portfwd up --dry-run` (resolution only); VmRSS / VmHWM of `portfwd up`
at that point. Each run also sends bytes through one forward of each cluster.

Usage: .venv/bin/python bench/profile_up.py [--forwards 50] [--clusters 2] [--runs 3]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

from throughput import memory_kib, sandbox_process  # sibling script

TARGETS = [
    ("svc/echo", ":80"),
    ("svc/web", ":80"),
    ("deploy/api", ":https"),
    ("deploy/echo", ":9000"),
]


def profile_text(kubeconfigs: list[str], forwards: int) -> str:
    lines = [
        "profiles:",
        "  big:",
        "    defaults: {context: sandbox, namespace: demo, address: 127.0.0.1}",
        "    forwards:",
    ]
    for i in range(forwards):
        target, port = TARGETS[i % len(TARGETS)]
        kubeconfig = kubeconfigs[i % len(kubeconfigs)]
        lines.append(
            f'      - {{name: f{i}, target: {target}, ports: ["{port}"], '
            f'kubeconfig: "{kubeconfig}"}}'
        )
    return "\n".join(lines) + "\n"


async def timed(*argv: str, env: dict[str, str]) -> float:
    start = time.perf_counter()
    proc = await asyncio.create_subprocess_exec(
        *argv, env=env, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE
    )
    _, err = await asyncio.wait_for(proc.communicate(), 120)
    if proc.returncode != 0:
        raise SystemExit(f"{argv[2:]} failed: {err.decode()}")
    return time.perf_counter() - start


async def echo(port: int) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"x" * 4096)
    await writer.drain()
    await asyncio.wait_for(reader.readexactly(4096), 30)
    writer.close()


async def one_up(
    path: Path, forwards: int, clusters: int, env: dict[str, str]
) -> tuple[float, dict[str, int]]:
    start = time.perf_counter()
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "portfwd",
        "up",
        "--profiles",
        str(path),
        "big",
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        stdin=asyncio.subprocess.DEVNULL,
    )
    try:
        assert proc.stdout is not None
        ports: dict[str, int] = {}
        while len(ports) < forwards:
            raw = await asyncio.wait_for(proc.stdout.readline(), 120)
            if not raw:
                assert proc.stderr is not None
                raise SystemExit(f"portfwd up ended: {(await proc.stderr.read()).decode()}")
            name, _, rest = raw.decode().rstrip().partition(": Forwarding from 127.0.0.1:")
            if rest:
                ports[name] = int(rest.split()[0])
        elapsed = time.perf_counter() - start
        memory = memory_kib(proc.pid)
        for i in range(clusters):  # f0 is on cluster 0, f1 on cluster 1, ...: echo targets
            echo_forward = next(f"f{j}" for j in range(i, forwards, clusters) if j % 4 in (0, 3))
            await echo(ports[echo_forward])
        return elapsed, memory
    finally:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGINT)
        await asyncio.wait_for(proc.wait(), 30)


@contextlib.asynccontextmanager
async def clusters(count: int) -> AsyncIterator[list[str]]:
    async with contextlib.AsyncExitStack() as stack:
        kubeconfigs = []
        for _ in range(count):
            kubeconfig, _direct = await stack.enter_async_context(sandbox_process())
            kubeconfigs.append(kubeconfig)
        yield kubeconfigs


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--forwards", type=int, default=50)
    parser.add_argument("--clusters", type=int, default=2)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, loopback, sandbox over TLS")
    config = Path(tempfile.mkdtemp(prefix="pfbench-"))
    env = dict(os.environ, PORTFWD_CONFIG_DIR=str(config))
    async with clusters(args.clusters) as kubeconfigs:
        path = config / "profiles.yaml"
        path.write_text(profile_text(kubeconfigs, args.forwards))
        path.chmod(0o600)
        floor = [
            await timed(sys.executable, "-m", "portfwd", "--version", env=env)
            for _ in range(args.runs)
        ]
        dry = [
            await timed(
                sys.executable,
                "-m",
                "portfwd",
                "up",
                "--profiles",
                str(path),
                "big",
                "--dry-run",
                env=env,
            )
            for _ in range(args.runs)
        ]
        runs = [await one_up(path, args.forwards, args.clusters, env) for _ in range(args.runs)]
    times = [t for t, _ in runs]
    rss = statistics.median(m["VmRSS"] for _, m in runs)
    hwm = statistics.median(m["VmHWM"] for _, m in runs)
    print(
        f"\nportfwd up, {args.forwards} forwards over {args.clusters} clusters, "
        f"median of {args.runs} (s)"
    )
    print(f"  portfwd --version (start-up floor)   {statistics.median(floor):6.2f}")
    print(f"  portfwd up --dry-run (resolve only)  {statistics.median(dry):6.2f}")
    print(
        f"  portfwd up, to all active            {statistics.median(times):6.2f}"
        f"   (runs: {', '.join(f'{t:.2f}' for t in times)})"
    )
    print(f"  RSS at that point: {rss / 1024:.1f} MiB (VmHWM {hwm / 1024:.1f} MiB)")


if __name__ == "__main__":
    asyncio.run(main())
