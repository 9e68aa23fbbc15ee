"""Does the screen slow the bytes? Echo latency and echoes delivered with the dashboard
in-process against headless `portfwd forward`, interleaved in one run.

Each round starts, in turn (the order rotates per round):
- `headless`: `portfwd forward svc/echo :80 ... :80` (N forwards);
- `dashboard`: the dashboard of this tree (`portfwd --kubeconfig ...`) in a private tmux
  server (200x50 pane) with a saved session of N running forwards to svc/echo; its forwards
  run in the engine process it starts (daemon/private.py); CPU is both processes';
- `dashboard@thread`: the same with `PORTFWD_ENGINE=thread`: the forwards on an engine
  thread inside the dashboard's process (the default before);
- `dashboard+daemon` (with `--daemon`): the dashboard started with `--daemon`, so the
  forwards run in a daemon process it starts (the other way to keep the screen off the
  bytes); CPU is the daemon's and the dashboard's together;
- `dashboard@before` (with `--before SRC`): the same dashboard, from another source tree
  (`PYTHONPATH=SRC`, e.g. `git archive main src | tar -x -C /tmp/before`).
Once all N listeners of the portfwd process accept and echo, every forward carries one
connection sending 4 KiB and reading the echo back every 50 ms for `--seconds`. Printed:
the round-trip p50/p99/max of the probe forward (the first one), p99 over all, echoes
delivered over all, and the CPU the portfwd process used meanwhile. The sandbox runs in
another process; the load generator is this process (its share counts in every mode alike).

Usage: .venv/bin/python bench/dashboard_echo.py [--forwards 50] [--seconds 20] [--rounds 2]
                                                [--before /tmp/before/src] [--daemon] [--thread]
Note: 2 shared cores; other work on the machine shows in every figure (hence interleaving).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shlex
import shutil
import signal
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from throughput import (  # sibling scripts, not a package
    cpu_seconds,
    forwarder_process,
    portfwd_argv,
    sandbox_process,
)
from tui import Tmux, alive, echo_ok, until, write_session

SIZE = 4096
INTERVAL = 0.05
READY_LIMIT = 120.0


def listening_ports(pid: int) -> set[int]:
    """TCP ports the process `pid` listens on (loopback IPv4), read from /proc."""
    inodes = set()
    with contextlib.suppress(OSError):
        for fd in os.listdir(f"/proc/{pid}/fd"):
            with contextlib.suppress(OSError):
                link = os.readlink(f"/proc/{pid}/fd/{fd}")
                if link.startswith("socket:["):
                    inodes.add(link[8:-1])
    ports = set()
    with contextlib.suppress(OSError):
        for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
            cols = line.split()
            if cols[3] == "0A" and cols[9] in inodes:
                ports.add(int(cols[1].rpartition(":")[2], 16))
    return ports


def descendants(pid: int) -> list[int]:
    """`pid` and every process below it, read from /proc."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        with contextlib.suppress(OSError, ValueError, IndexError):
            stat = Path(f"/proc/{entry}/stat").read_text()
            ppid = int(stat.rpartition(")")[2].split()[1])
            children.setdefault(ppid, []).append(int(entry))
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo += children.get(current, [])
    return found


async def listener_of(root: int, count: int) -> int:
    """The process at or below `root` that listens on `count` ports (the engine's)."""
    found: list[int] = []

    def ready() -> bool:
        found[:] = [p for p in descendants(root) if len(listening_ports(p)) >= count]
        return bool(found)

    await until(ready, READY_LIMIT, f"{count} listeners under pid {root}")
    return found[0]


@dataclass
class Figures:
    probe: list[float] = field(default_factory=list)  # round trips of the probe forward, s
    all_rtts: list[float] = field(default_factory=list)
    echoes: int = 0
    cpu: float = 0.0  # share of one core used by the portfwd process during the load


async def one_stream(port: int, until_t: float, rtts: list[float]) -> int:
    reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 20)
    payload = os.urandom(SIZE)
    done = 0
    try:
        tick = time.perf_counter()
        while (now := time.perf_counter()) < until_t:
            writer.write(payload)
            await reader.readexactly(SIZE)
            rtts.append(time.perf_counter() - now)
            done += 1
            tick = max(tick + INTERVAL, time.perf_counter())  # never bursts to catch up
            await asyncio.sleep(tick - time.perf_counter())
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
    return done


async def load(pid: int, ports: list[int], seconds: float, also: int | None = None) -> Figures:
    """The echo load through `ports` (of process `pid`); CPU of `pid` (and `also`)."""
    pids = [pid] if also is None else [pid, also]
    figures = Figures()
    per_port: list[list[float]] = [[] for _ in ports]
    before = sum(cpu_seconds(p) for p in pids)
    started = time.perf_counter()
    end = started + seconds
    counts = await asyncio.gather(
        *(one_stream(p, end, rtts) for p, rtts in zip(ports, per_port, strict=True))
    )
    figures.cpu = (sum(cpu_seconds(p) for p in pids) - before) / (time.perf_counter() - started)
    figures.echoes = sum(counts)
    figures.probe = per_port[0]
    figures.all_rtts = [r for rtts in per_port for r in rtts]
    return figures


async def ready_ports(pid: int, count: int) -> list[int]:
    """Wait until `pid` listens on `count` ports that each echo."""
    await until(lambda: len(listening_ports(pid)) >= count, READY_LIMIT, f"{count} listeners")
    ports = sorted(listening_ports(pid))
    deadline = time.monotonic() + READY_LIMIT
    for port in ports:
        while True:
            try:
                if await echo_ok(port):
                    break
            except (OSError, asyncio.IncompleteReadError, TimeoutError):
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"port {port} never echoed")
            await asyncio.sleep(0.1)
    return ports


@contextlib.asynccontextmanager
async def dashboard(
    tmux: Tmux,
    kubeconfig: str,
    count: int,
    pythonpath: str | None,
    daemon: bool = False,
    switch: str = "",
    thread: bool = False,
) -> AsyncIterator[tuple[int, int | None]]:
    """The dashboard with `count` saved running forwards, in its own config and runtime dirs
    (no daemon of anyone else's is attached to) -> (its pid, its daemon's pid or None)."""
    config = Path(tempfile.mkdtemp(prefix="portfwd-bench-echo-"))
    write_session(config, count)
    env = [
        "env",
        "-u",
        "COLUMNS",
        "-u",
        "LINES",
        f"PORTFWD_CONFIG_DIR={shlex.quote(str(config))}",
        f"PORTFWD_RUNTIME_DIR={shlex.quote(str(config / 'run'))}",
    ]
    if pythonpath:
        env.append(f"PYTHONPATH={shlex.quote(pythonpath)}")
    if switch:
        env.append(f"PORTFWD_SWITCH_INTERVAL={switch}")
    if thread:
        env.append("PORTFWD_ENGINE=thread")
    flags = ["--daemon"] if daemon else []
    command = " ".join(
        [*env, shlex.quote(sys.executable), "-m", "portfwd", *flags, "--kubeconfig", kubeconfig]
    )
    session = f"e{uuid.uuid4().hex[:8]}"
    pid = await tmux.start(session, command)
    lock = config / "run" / "daemon.lock"
    try:
        daemon_pid = None
        if daemon:
            await until(lambda: lock.exists() and lock.read_text().strip().isdigit(), 60, "daemon")
            daemon_pid = int(lock.read_text().strip())
        yield pid, daemon_pid
    finally:
        if daemon:
            stop = await asyncio.create_subprocess_exec(
                *(sys.executable, "-m", "portfwd", "daemon", "stop"),
                env={
                    **os.environ,
                    "PORTFWD_CONFIG_DIR": str(config),
                    "PORTFWD_RUNTIME_DIR": str(config / "run"),
                },
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.DEVNULL,
            )
            await asyncio.wait_for(stop.wait(), 60)
        await tmux.keys(session, "q")
        with contextlib.suppress(RuntimeError):
            await until(lambda: not alive(pid), 30, "the dashboard to quit")
        if alive(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        await tmux.kill_session(session)
        shutil.rmtree(config, ignore_errors=True)


async def run_mode(
    mode: str, tmux: Tmux, kubeconfig: str, count: int, seconds: float, before: str | None
) -> Figures:
    if mode == "headless":
        argv = portfwd_argv(kubeconfig, *([":80"] * count))
        async with forwarder_process(argv, count, line_timeout=READY_LIMIT) as (proc, _):
            return await load(proc.pid, await ready_ports(proc.pid, count), seconds)
    pythonpath = before if mode.endswith("@before") else None
    switch = mode.partition("@si=")[2]
    daemon = mode.endswith("+daemon")
    thread = mode.endswith("@thread")
    async with dashboard(tmux, kubeconfig, count, pythonpath, daemon, switch, thread) as pids:
        app, daemon = pids
        engine = daemon if daemon is not None else await listener_of(app, count)
        also = app if engine != app else None
        return await load(engine, await ready_ports(engine, count), seconds, also=also)


def ms(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return 1000 * ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--forwards", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=20.0, help="load per mode and round")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--before", help="a source tree (its src/) to compare the dashboard with")
    parser.add_argument("--daemon", action="store_true", help="also the dashboard on a daemon")
    parser.add_argument(
        "--thread", action="store_true", help="also the dashboard with its engine on a thread"
    )
    parser.add_argument(
        "--switch", help="also the dashboard with this GIL switch interval (s), e.g. 0.001"
    )
    args = parser.parse_args()
    if shutil.which("tmux") is None:
        sys.exit("tmux is not on PATH")
    modes = ["headless", "dashboard"]
    modes += [f"dashboard@si={args.switch}"] if args.switch else []
    modes += ["dashboard@thread"] if args.thread else []
    modes += (["dashboard+daemon"] if args.daemon else []) + (
        ["dashboard@before"] if args.before else []
    )
    results: dict[str, list[Figures]] = {m: [] for m in modes}
    tmux = Tmux()
    print(
        f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, loadavg "
        f"{os.getloadavg()[0]:.1f}; {args.forwards} forwards, each one connection echoing "
        f"{SIZE} B every {INTERVAL * 1000:.0f} ms for {args.seconds:.0f} s; "
        f"{args.rounds} round(s), modes interleaved"
    )
    try:
        async with sandbox_process() as (kubeconfig, _direct):
            for rnd in range(args.rounds):
                order = modes[rnd % len(modes) :] + modes[: rnd % len(modes)]
                for mode in order:
                    figures = await run_mode(
                        mode, tmux, kubeconfig, args.forwards, args.seconds, args.before
                    )
                    results[mode].append(figures)
    finally:
        await tmux.kill()

    print(
        f"\n{'mode':<18}{'round':>6}{'probe p50':>10}{'p99':>8}{'max':>8}"
        f"{'all p99':>9}{'echoes':>8}{'CPU':>7}   (ms; CPU: share of one core)"
    )
    for mode in modes:
        for i, f in enumerate(results[mode]):
            print(
                f"{mode:<18}{i + 1:>6}{ms(f.probe, 0.5):10.1f}{ms(f.probe, 0.99):8.1f}"
                f"{ms(f.probe, 1.0):8.1f}{ms(f.all_rtts, 0.99):9.1f}{f.echoes:8d}{f.cpu:7.0%}"
            )
    base = results["headless"]
    print("\nagainst headless, median over rounds (probe p99 ratio; echoes ratio)")
    for mode in modes[1:]:
        p99 = [
            ms(f.probe, 0.99) / ms(b.probe, 0.99) for f, b in zip(results[mode], base, strict=True)
        ]
        echoes = [f.echoes / b.echoes for f, b in zip(results[mode], base, strict=True) if b.echoes]
        print(
            f"  {mode:<18} p99 x{statistics.median(p99):.2f}  "
            f"echoes x{statistics.median(echoes):.3f}"
        )


if __name__ == "__main__":
    asyncio.run(main())
