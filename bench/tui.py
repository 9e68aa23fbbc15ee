"""Dashboard figures: start, restore, quit, memory and idle CPU of the real TUI, in one run.

A script, not a test: it prints figures. The app runs as a real process in a private tmux
server (`tmux -L <unique> -f /dev/null`, a 200x50 pane), each run with its own throw-away
$PORTFWD_CONFIG_DIR; every wait polls `capture-pane` against a deadline (~50 ms steps, so
times carry that much slack plus tmux's own redraw delay).

1. `portfwd demo` (sandbox inside the app's process): first start until the seeded forwards
   show (2 active, 1 reconnecting); an empty session until the empty dashboard (baseline); a session
   of 20 running forwards to svc/echo until all 20 are restored and active; `q` with 20 active
   until the process is gone and every listener is closed; memory and idle CPU with 20
   active (the sandbox's share included).
2. The dashboard (`portfwd --kubeconfig`) against the sandbox in another process, so the
   figures are the app's alone (with its engine process: memory and CPU are summed over the
   app and the processes it started): start and restore times, VmRSS / VmHWM and CPU while
   idle for 10 s with 0, 5 and 20 active forwards, quit time with 20.
3. Baseline: headless `portfwd forward` holding 5 and 20 forwards against the same sandbox
   (start until every "Forwarding from" line, memory, idle CPU, SIGINT until gone).
4. Idle CPU of the dashboard with many forwards (`--many`, default 50 and 500): more rows
   than the pane shows, so it waits until the app holds that many listening sockets and every
   row on screen is active (issue 22: an idle dashboard is idle).

Usage: .venv/bin/python bench/tui.py [--runs 3] [--idle 10] [--many 50,500]
Note: 2 shared cores; other work on the machine shows up in every figure.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shlex
import shutil
import signal
import socket
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))

from throughput import (  # a sibling script, not a package
    cpu_seconds,
    forwarder_process,
    memory_kib,
    portfwd_argv,
    sandbox_process,
)

WIDTH, HEIGHT = 200, 50
POLL = 0.05
DEADLINE = 90.0
ACTIVE = "● active"
EXIT_MARK = "PORTFWD-BENCH-EXITED="


class Tmux:
    """One private tmux server (it exits with its last session; `new-session` starts it)."""

    def __init__(self) -> None:
        self.socket_name = f"portfwd-bench-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self.started = False
        self.socket_path: Path | None = None

    async def run(self, *args: str) -> str:
        proc = await asyncio.create_subprocess_exec(
            "tmux",
            "-L",
            self.socket_name,
            "-f",
            "/dev/null",
            *args,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(proc.communicate(), 20)
        if proc.returncode != 0:
            raise RuntimeError(f"tmux {args[0]} failed: {err.decode().strip()}")
        return out.decode()

    async def start(self, session: str, command: str) -> int:
        """Start `command` in a shell that then prints its exit code -> the command's pid."""
        size = ("-x", str(WIDTH), "-y", str(HEIGHT))
        wrapped = f"{command}; echo {EXIT_MARK}$?; sleep 600"
        await self.run("new-session", "-d", "-s", session, *size, wrapped)
        self.started = True
        if self.socket_path is None:
            where = await self.run("display-message", "-p", "-t", session, "#{socket_path}")
            self.socket_path = Path(where.strip())
        await self.run("resize-window", "-t", session, *size)
        shell = int((await self.run("display-message", "-p", "-t", session, "#{pane_pid}")).strip())
        await until(lambda: first_child(shell) is not None, 10, "the app's process")
        pid = first_child(shell)
        assert pid is not None
        return pid

    async def screen(self, session: str) -> str:
        return await self.run("capture-pane", "-p", "-t", session)

    async def keys(self, session: str, *keys: str) -> None:
        await self.run("send-keys", "-t", session, *keys)

    async def exit_status(self, session: str) -> str:
        """The exit code the pane's shell printed after the app ended."""
        screen = await self.wait_for(session, lambda s: EXIT_MARK in s, "the exit code")
        return screen.rpartition(EXIT_MARK)[2].split()[0]

    async def wait_for(self, session: str, check: Callable[[str], bool], what: str) -> str:
        deadline = time.monotonic() + DEADLINE
        screen = ""
        while time.monotonic() < deadline:
            screen = await self.screen(session)
            if check(screen):
                return screen
            await asyncio.sleep(POLL)
        raise RuntimeError(f"timed out waiting for {what}; the screen was:\n{screen}")

    async def kill_session(self, session: str) -> None:
        with contextlib.suppress(RuntimeError, TimeoutError):
            await self.run("kill-session", "-t", session)

    async def kill(self) -> None:
        if self.started:
            with contextlib.suppress(RuntimeError, TimeoutError):
                await self.run("kill-server")
        if self.socket_path is not None:  # tmux leaves its socket file behind
            self.socket_path.unlink(missing_ok=True)


def first_child(pid: int) -> int | None:
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return int(children[0]) if children else None


def alive(pid: int) -> bool:
    """Running (a zombie not yet reaped by tmux counts as gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


async def until(check: Callable[[], bool], limit: float, what: str) -> None:
    """Poll `check` every 10 ms (the figure's resolution) until true, or fail after `limit`."""
    deadline = time.monotonic() + limit
    while not check():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


def listening(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(1)
        return probe.connect_ex(("127.0.0.1", port)) == 0


def write_session(config: Path, count: int) -> None:
    """A saved session: `count` running forwards to svc/echo:80 on ports the kernel picks
    (local port 0), so no other process can take a port between choosing and binding it."""
    forwards = [
        {
            "id": f"bench{i:03d}",
            "target": "svc/echo",
            "remote_port": 80,
            "local_port": 0,
            "addresses": ["127.0.0.1"],
            "running": True,
            "namespace": "demo",
            "context": "sandbox",
        }
        for i in range(count)
    ]
    (config / "state.yaml").write_text(yaml.safe_dump({"version": 1, "forwards": forwards}))


def active_ports(screen: str) -> set[int]:
    found = set()
    for line in screen.splitlines():
        if ACTIVE in line and "svc/echo" in line:
            for word in line.split():
                host, _, port = word.partition(":")
                if host == "127.0.0.1" and port.isdigit() and int(port) != 0:
                    found.add(int(port))
    return found


def row_state(screen: str, target: str) -> str:
    line = next((x for x in screen.splitlines() if f" {target} " in x), "")
    return line.split()[1] if len(line.split()) > 1 else ""


async def echo_ok(port: int) -> bool:
    payload = os.urandom(1000)
    reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 20)
    try:
        writer.write(payload)
        got = await asyncio.wait_for(reader.readexactly(len(payload)), 20)
    finally:
        writer.close()
    return got == payload


def family(pid: int) -> list[int]:
    """`pid` and the processes below it (the dashboard and its engine process, which a
    worker thread starts: every thread's children count)."""
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        with contextlib.suppress(OSError):
            for task in Path(f"/proc/{current}/task").iterdir():
                with contextlib.suppress(OSError):
                    todo += [int(c) for c in (task / "children").read_text().split()]
    return found


async def idle_figures(pid: int, seconds: float) -> tuple[dict[str, int], float]:
    """Memory after a short settle, then the share of one core used over `seconds` idle;
    both summed over `pid` and the processes it started."""
    await asyncio.sleep(2)
    pids = family(pid)
    mem: dict[str, int] = {}
    for one in pids:
        for key, value in memory_kib(one).items():
            mem[key] = mem.get(key, 0) + value
    before = sum(cpu_seconds(p) for p in pids)
    await asyncio.sleep(seconds)
    return mem, (sum(cpu_seconds(p) for p in pids) - before) / seconds


@dataclass
class App:
    tmux: Tmux
    session: str
    pid: int
    started: float  # perf_counter just before tmux was asked to start it
    config: Path


@contextlib.asynccontextmanager
async def tui(tmux: Tmux, args: list[str], count: int | None) -> AsyncIterator[App]:
    """`portfwd ARGS` in a new tmux session with a fresh config dir holding `count` saved
    forwards (None: no state file)."""
    config = Path(tempfile.mkdtemp(prefix="portfwd-bench-tui-"))
    if count is not None:
        write_session(config, count)
    session = f"s{uuid.uuid4().hex[:8]}"
    command = " ".join(
        [
            "env",
            "-u",
            "COLUMNS",
            "-u",
            "LINES",
            f"PORTFWD_CONFIG_DIR={shlex.quote(str(config))}",
            shlex.quote(sys.executable),
            "-m",
            "portfwd",
            *map(shlex.quote, args),
        ]
    )
    started = time.perf_counter()
    pid = await tmux.start(session, command)
    try:
        yield App(tmux, session, pid, started, config)
    finally:
        if alive(pid):
            await tmux.kill_session(session)  # SIGHUP to the app
            with contextlib.suppress(RuntimeError):
                await until(lambda: not alive(pid), 15, "the app to end")
            if alive(pid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        await tmux.kill_session(session)
        shutil.rmtree(config, ignore_errors=True)


async def wait_active(app: App, count: int) -> tuple[float, list[int]]:
    """Seconds from start until `count` distinct ports show an active svc/echo row, and
    those ports (each checked with an echo)."""
    screen = await app.tmux.wait_for(
        app.session, lambda s: len(active_ports(s)) >= count, f"{count} active forwards"
    )
    elapsed = time.perf_counter() - app.started
    ports = sorted(active_ports(screen))
    bad = [p for p in ports if not await echo_ok(p)]
    if bad:
        raise RuntimeError(f"echo through ports {bad} failed")
    return elapsed, ports


async def quit_app(app: App, ports: list[int]) -> float:
    """Seconds from `q` until the process is gone and none of `ports` accepts a connection."""
    start = time.perf_counter()
    await app.tmux.keys(app.session, "q")
    await until(
        lambda: not alive(app.pid) and not any(listening(p) for p in ports),
        DEADLINE,
        "the app to quit and close its listeners",
    )
    elapsed = time.perf_counter() - start
    status = await app.tmux.exit_status(app.session)
    if status != "0":
        screen = await app.tmux.screen(app.session)
        raise RuntimeError(f"the app exited with status {status!r}; the screen was:\n{screen}")
    return elapsed


@dataclass
class Headless:
    proc: asyncio.subprocess.Process
    ports: list[int]
    start_seconds: float


@contextlib.asynccontextmanager
async def headless(kubeconfig: str, count: int) -> AsyncIterator[Headless]:
    """`portfwd forward svc/echo :80 ... :80` (ports the kernel picks) until every
    "Forwarding from" line."""
    started = time.perf_counter()
    argv = portfwd_argv(kubeconfig, *([":80"] * count))
    async with forwarder_process(argv, count, line_timeout=DEADLINE) as (proc, bound):
        yield Headless(proc, bound, time.perf_counter() - started)


async def headless_quit(h: Headless) -> float:
    start = time.perf_counter()
    h.proc.send_signal(signal.SIGINT)
    await asyncio.wait_for(h.proc.wait(), DEADLINE)
    await until(lambda: not any(listening(p) for p in h.ports), DEADLINE, "listeners closed")
    return time.perf_counter() - start


def summary(values: list[float]) -> str:
    if not values:
        return "-"
    if len(values) == 1:
        return f"{values[0]:6.2f}"
    return f"{min(values):6.2f} {statistics.median(values):7.2f} {max(values):6.2f}"


def report_times(title: str, rows: list[tuple[str, list[float]]]) -> None:
    print(f"\n{title}")
    print(f"  {'':<66}{'min':>6} {'median':>7} {'max':>6}")
    for name, values in rows:
        print(f"  {name:<66}{summary(values)}")


async def demo_figures(
    tmux: Tmux, runs: int, idle: float
) -> tuple[list[tuple[str, list[float]]], list[tuple[str, dict[str, int], float]]]:
    first: list[float] = []
    empty: list[float] = []
    restore20: list[float] = []
    quit3: list[float] = []
    quit20: list[float] = []
    resources: list[tuple[str, dict[str, int], float]] = []
    for run in range(runs):
        async with tui(tmux, ["demo"], None) as app:
            screen = await tmux.wait_for(
                app.session,
                lambda s: (
                    row_state(s, "svc/web") == "active"
                    and row_state(s, "svc/api") == "active"
                    # Its only pod crash-loops: it waits for one, retrying.
                    and row_state(s, "svc/crashy") == "reconnecting"
                ),
                "the seeded forwards",
            )
            first.append(time.perf_counter() - app.started)
            seeded = [
                int(w.split(":")[1])
                for line in screen.splitlines()
                for w in line.split()
                if w.startswith("127.0.0.1:") and ACTIVE in line
            ]
            quit3.append(await quit_app(app, seeded))
        async with tui(tmux, ["demo"], 0) as app:
            await tmux.wait_for(app.session, lambda s: "No forwards yet" in s, "empty dashboard")
            empty.append(time.perf_counter() - app.started)
        async with tui(tmux, ["demo"], 20) as app:
            elapsed, ports = await wait_active(app, 20)
            restore20.append(elapsed)
            if run == 0:
                mem, cpu = await idle_figures(app.pid, idle)
                resources.append(("portfwd demo, 20 active (+ sandbox inside)", mem, cpu))
            quit20.append(await quit_app(app, ports))
    times = [
        ("portfwd demo, first start -> seeded forwards (2 active, 1 reconnecting)", first),
        ("portfwd demo, empty session -> empty dashboard (baseline)", empty),
        ("portfwd demo, 20 saved forwards -> all 20 restored and active", restore20),
        ("portfwd demo, q with the 2 seeded forwards active", quit3),
        ("portfwd demo, q with 20 active", quit20),
    ]
    return times, resources


async def dashboard_figures(
    tmux: Tmux, kubeconfig: str, runs: int, idle: float
) -> tuple[list[tuple[str, list[float]]], list[tuple[str, dict[str, int], float]]]:
    args = ["--kubeconfig", kubeconfig]
    starts: dict[int, list[float]] = {0: [], 5: [], 20: []}
    quit20: list[float] = []
    resources: list[tuple[str, dict[str, int], float]] = []
    for run in range(runs):
        for count in (0, 5, 20):
            async with tui(tmux, args, count) as app:
                ports: list[int] = []
                if count:
                    elapsed, ports = await wait_active(app, count)
                    starts[count].append(elapsed)
                else:
                    await tmux.wait_for(app.session, lambda s: "No forwards yet" in s, "empty")
                    starts[0].append(time.perf_counter() - app.started)
                if run == 0:
                    mem, cpu = await idle_figures(app.pid, idle)
                    resources.append((f"dashboard, {count} active forwards", mem, cpu))
                if count == 20:
                    quit20.append(await quit_app(app, ports))
    times = [
        ("dashboard, empty session -> empty dashboard", starts[0]),
        ("dashboard, 5 saved forwards -> all 5 active", starts[5]),
        ("dashboard, 20 saved forwards -> all 20 active", starts[20]),
        ("dashboard, q with 20 active", quit20),
    ]
    return times, resources


def listening_sockets(pid: int) -> int:
    """TCP sockets in LISTEN state that the process (or its engine process) holds."""
    inodes = set()
    for one in family(pid):
        with contextlib.suppress(OSError):
            for fd in Path(f"/proc/{one}/fd").iterdir():
                with contextlib.suppress(OSError):
                    target = os.readlink(fd)
                    if target.startswith("socket:["):
                        inodes.add(target[8:-1])
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            count += fields[3] == "0A" and fields[9] in inodes
    return count


async def many_figures(
    tmux: Tmux, kubeconfig: str, idle: float, counts: list[int]
) -> list[tuple[str, dict[str, int], float]]:
    resources: list[tuple[str, dict[str, int], float]] = []
    for count in counts:
        async with tui(tmux, ["--kubeconfig", kubeconfig], count) as app:
            await until(
                lambda pid=app.pid, want=count: listening_sockets(pid) >= want,
                DEADLINE * 3,
                "listeners",
            )
            await tmux.wait_for(
                app.session,
                lambda s: ACTIVE in s and not any(w in s for w in ("starting", "reconnecting")),
                "the rows on screen active",
            )
            mem, cpu = await idle_figures(app.pid, idle)
            resources.append((f"dashboard, {count} active forwards", mem, cpu))
    return resources


async def headless_figures(
    kubeconfig: str, runs: int, idle: float
) -> tuple[list[tuple[str, list[float]]], list[tuple[str, dict[str, int], float]]]:
    starts: dict[int, list[float]] = {5: [], 20: []}
    quits: list[float] = []
    resources: list[tuple[str, dict[str, int], float]] = []
    for run in range(runs):
        for count in (5, 20):
            async with headless(kubeconfig, count) as h:
                starts[count].append(h.start_seconds)
                bad = [p for p in h.ports if not await echo_ok(p)]
                if bad:
                    raise RuntimeError(f"echo through ports {bad} failed")
                if run == 0:
                    mem, cpu = await idle_figures(h.proc.pid, idle)
                    resources.append((f"portfwd forward (headless), {count} forwards", mem, cpu))
                if count == 20:
                    quits.append(await headless_quit(h))
    times = [
        ("portfwd forward, 5 ports -> all listening (baseline)", starts[5]),
        ("portfwd forward, 20 ports -> all listening (baseline)", starts[20]),
        ("portfwd forward, SIGINT with 20 active (baseline)", quits),
    ]
    return times, resources


async def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="repetitions of each timing")
    parser.add_argument("--idle", type=float, default=10.0, help="seconds of idle CPU sampling")
    parser.add_argument("--many", default="50,500", help="forward counts for idle CPU at scale")
    args = parser.parse_args()
    if shutil.which("tmux") is None:
        sys.exit("tmux is not on PATH")

    tmux = Tmux()
    try:
        version = (await tmux.run("-V")).strip()
        print(
            f"python {sys.version.split()[0]}, {version}, {os.cpu_count()} CPUs, "
            f"pane {WIDTH}x{HEIGHT}, loopback, {args.runs} runs per timing"
        )
        demo, demo_res = await demo_figures(tmux, args.runs, args.idle)
        async with sandbox_process() as (kubeconfig, _direct):
            dash, dash_res = await dashboard_figures(tmux, kubeconfig, args.runs, args.idle)
            head, head_res = await headless_figures(kubeconfig, args.runs, args.idle)
            many = [int(n) for n in args.many.split(",") if n]
            dash_res += await many_figures(tmux, kubeconfig, args.idle, many)
    finally:
        await tmux.kill()

    report_times("portfwd demo in tmux, sandbox in the same process (seconds)", demo)
    report_times(
        "dashboard and headless against the sandbox in another process (seconds)", dash + head
    )
    print(
        f"\nmemory and idle CPU of the portfwd process (2 s after all forwards are active); "
        f"CPU over {args.idle:.0f} s idle, % of one core"
    )
    print(f"  {'':<46}{'VmRSS MiB':>10}{'VmHWM MiB':>10}{'CPU idle':>10}")
    for name, mem, cpu in dash_res + head_res + demo_res:
        print(f"  {name:<46}{mem['VmRSS'] / 1024:10.1f}{mem['VmHWM'] / 1024:10.1f}{cpu:10.2%}")


if __name__ == "__main__":
    asyncio.run(main())
