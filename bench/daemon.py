"""The daemon, measured: what 20 forwards cost while idle, and how fast `portfwd ls` answers.

Processes: the sandbox cluster (its own process), the daemon (`portfwd daemon --detach`, a
private config and runtime dir), this script as the client. Figures:

1. RSS and idle CPU with F forwards (svc/echo :80, each used once, then left idle for I
   seconds), beside the same F forwards as F `kubectl port-forward` processes (summed) and as
   one `portfwd forward` process with F ports (the in-process engine, no daemon);
2. wall time of `portfwd ls` (and `-o json`) with L forwards in the daemon, N runs each:
   median and p95, beside `portfwd --version` (the Python start-up floor) and
   `kubectl get pods` against the same API server.

Usage: .venv/bin/python bench/daemon.py [--forwards 20] [--idle 30] [--listed 200] [--runs 20]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

from kubectl_vs_portfwd import kubectl_process, kubectl_version  # sibling scripts
from throughput import cpu_seconds, forwarder_process, memory_kib, percentile, sandbox_process

from portfwd.daemon.client import DaemonClient
from portfwd.daemon.paths import daemon_paths
from portfwd.engine.model import ForwardSpec
from portfwd.engine.serial import spec_to_dict


async def echo_once(port: int) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"ping")
    await writer.drain()
    await asyncio.wait_for(reader.readexactly(4), 30)
    writer.close()


async def run(*argv: str, env: dict[str, str]) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        *argv,
        env=env,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode is not None
    return proc.returncode, out.decode()


@contextlib.asynccontextmanager
async def daemon(kubeconfig: str) -> AsyncIterator[tuple[dict[str, str], int]]:
    home = Path(tempfile.mkdtemp(prefix="pfb-", dir="/tmp"))
    env = {
        **os.environ,
        "PORTFWD_CONFIG_DIR": str(home / "config"),
        "PORTFWD_RUNTIME_DIR": str(home / "run"),
        "KUBECONFIG": kubeconfig,
    }
    code, out = await run(sys.executable, "-m", "portfwd", "daemon", "--detach", env=env)
    assert code == 0, out
    pid = int(out.split("(pid ", 1)[1].split(")", 1)[0])
    try:
        yield env, pid
    finally:
        await run(sys.executable, "-m", "portfwd", "daemon", "stop", env=env)
        shutil.rmtree(home, ignore_errors=True)


async def add_forwards(env: dict[str, str], kubeconfig: str, count: int, start: int) -> list[int]:
    paths = daemon_paths(env)
    client = await DaemonClient.connect(paths, client="bench")
    try:
        ports = []
        for i in range(count):
            spec = ForwardSpec(
                target="svc/echo",
                remote_port=80,
                namespace="demo",
                kubeconfig=kubeconfig,
                addresses=("127.0.0.1",),
                name=f"echo-{start + i}",
            )
            snap = await client.request("add", spec=spec_to_dict(spec))
            ports.append(int(snap["local_port"]))
        return ports
    finally:
        await client.close()


async def idle_figures(pids: list[int], idle: float) -> tuple[float, float, float]:
    """(RSS MiB summed before the idle window, after it, CPU % of one core during it)."""
    before = sum(memory_kib(p)["VmRSS"] for p in pids) / 1024
    cpu0 = sum(cpu_seconds(p) for p in pids)
    await asyncio.sleep(idle)
    cpu1 = sum(cpu_seconds(p) for p in pids)
    after = sum(memory_kib(p)["VmRSS"] for p in pids) / 1024
    return before, after, (cpu1 - cpu0) / idle * 100


async def timed(argv: list[str], env: dict[str, str], runs: int) -> tuple[float, float]:
    """(median, p95) wall ms of `argv`, after one warm-up run."""
    await run(*argv, env=env)
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        code, out = await run(*argv, env=env)
        times.append((time.perf_counter() - started) * 1000)
        assert code == 0, out
    times.sort()
    return percentile(times, 50), percentile(times, 95)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--forwards", type=int, default=20)
    parser.add_argument("--idle", type=float, default=30.0)
    parser.add_argument("--listed", type=int, default=200)
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    have_kubectl = shutil.which("kubectl") is not None
    rows: list[tuple[str, float, float, float]] = []
    async with sandbox_process() as (kubeconfig, _direct), daemon(kubeconfig) as (env, pid):
        ports = await add_forwards(env, kubeconfig, args.forwards, 0)
        for port in ports:
            await echo_once(port)
        await asyncio.sleep(2)
        rows.append(
            (f"portfwd daemon, {args.forwards} forwards", *await idle_figures([pid], args.idle))
        )

        argv = [
            sys.executable, "-m", "portfwd", "forward", "--kubeconfig", kubeconfig,
            "-n", "demo", "--address", "127.0.0.1", "svc/echo", *([":80"] * args.forwards),
        ]  # fmt: skip
        async with forwarder_process(argv, args.forwards, stop=signal.SIGINT) as (
            proc,
            local,
        ):
            for port in local:
                await echo_once(port)
            await asyncio.sleep(2)
            rows.append(
                (
                    f"portfwd forward, {args.forwards} ports, 1 process",
                    *await idle_figures([proc.pid], args.idle),
                )
            )

        if have_kubectl:
            async with contextlib.AsyncExitStack() as stack:
                pids = []
                for _ in range(args.forwards):
                    kpid, (kport,) = await stack.enter_async_context(
                        kubectl_process(kubeconfig, ":80", websockets=True)
                    )
                    await echo_once(kport)
                    pids.append(kpid)
                await asyncio.sleep(2)
                rows.append(
                    (
                        f"{kubectl_version()}, {args.forwards} processes",
                        *await idle_figures(pids, args.idle),
                    )
                )

        await add_forwards(env, kubeconfig, args.listed - args.forwards, args.forwards)
        portfwd = [sys.executable, "-m", "portfwd"]
        latency = []
        for name, argv in (
            (f"portfwd ls ({args.listed} forwards)", ["ls"]),
            (f"portfwd ls -o json ({args.listed})", ["ls", "-o", "json"]),
            ("portfwd --version (start-up floor)", ["--version"]),
        ):
            latency.append((name, *await timed([*portfwd, *argv], env, args.runs)))
        if have_kubectl:
            kubectl = ["kubectl", "--kubeconfig", kubeconfig, "get", "pods", "-n", "demo"]
            latency.append(("kubectl get pods -n demo", *await timed(kubectl, env, args.runs)))

    print(f"\nidle for {args.idle:g} s after one connection per forward")
    print(f"{'':48} {'RSS MiB':>8} {'after':>8} {'CPU %':>7}")
    for name, before, after, cpu in rows:
        print(f"{name:48} {before:8.1f} {after:8.1f} {cpu:7.2f}")
    print(f"\nwall ms over {args.runs} runs")
    print(f"{'':48} {'p50':>8} {'p95':>8}")
    for name, p50, p95 in latency:
        print(f"{name:48} {p50:8.1f} {p95:8.1f}")
    print(json.dumps({"idle": rows, "latency": latency}))


if __name__ == "__main__":
    asyncio.run(main())
