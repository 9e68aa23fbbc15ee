"""Issue 19's figures in one run, each beside its baseline:

1. the HTTP request log: throughput and the forwarder's CPU per GiB, and per 1,000 small
   requests, with `--http-log` on and off (baseline: off), rounds interleaved (httplog.py's
   client);
2. idle CPU of the dashboard holding --forwards running forwards (a real TUI in a private
   tmux server, 200x50) against headless `portfwd forward` holding as many (baseline);
3. UI lag while those forwards move traffic: the time from a key (down/up, the selection
   moves) until the screen shows the other forward in the detail pane, with every forward
   echoing 4 KiB every 50 ms (dashboard_echo.py's load), against the same keys on the idle
   dashboard (baseline); the echo round trips under that load are printed too.

The sandbox runs in another process; tmux is polled every ~10 ms (the lag's resolution, plus
tmux's own redraw delay, the same in both columns).

Usage: .venv/bin/python bench/traffic.py [--mb 256] [--requests 2000] [--rounds 3]
                                         [--forwards 50] [--idle 10] [--seconds 10]
                                         [--keys 20]
Note: 2 shared cores; other work on the machine shows in every figure.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shlex
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from dashboard_echo import listener_of, load, ms, ready_ports  # sibling scripts, not a package
from httplog import argv as httplog_argv
from httplog import big, small
from throughput import cpu_seconds, forwarder_process, sandbox_process
from tui import ACTIVE, App, Tmux, headless, idle_figures, tui

POLL = 0.01
SPARK_DRAIN = 9.0  # the rate column's sparkline (8 s) and a tick
LAG_LIMIT = 30.0


async def http_log_figures(
    kubeconfig: str, mb: int, requests: int, rounds: int
) -> dict[str, dict[str, float]]:
    total = mb * 1024 * 1024
    found: dict[str, dict[str, list[float]]] = {}
    async with (
        forwarder_process(httplog_argv(kubeconfig, False), 1) as (off, off_ports),
        forwarder_process(httplog_argv(kubeconfig, True), 1) as (on, on_ports),
    ):
        runners = [("off", off.pid, off_ports[0]), ("on", on.pid, on_ports[0])]
        for rnd in range(rounds):
            for label, pid, port in runners[rnd % 2 :] + runners[: rnd % 2]:
                row = found.setdefault(label, {"mbs": [], "cpu_gib": [], "rps": [], "cpu_k": []})
                cpu = cpu_seconds(pid)
                seconds = await big(port, total)
                row["mbs"].append(total / seconds / 1e6)
                row["cpu_gib"].append((cpu_seconds(pid) - cpu) / (total / (1 << 30)))
                cpu = cpu_seconds(pid)
                seconds = await small(port, requests)
                row["rps"].append(requests / seconds)
                row["cpu_k"].append((cpu_seconds(pid) - cpu) * 1000 / requests * 1000)
    return {k: {m: statistics.median(v) for m, v in row.items()} for k, row in found.items()}


def detail_line(screen: str) -> str:
    """The detail pane's summary line (it names the selected forward's local port)."""
    return next((line for line in screen.splitlines() if " in demo (" in line), "")


async def key_lags(app: App, count: int) -> list[float]:
    """Seconds from each key (down, up, down...) to the detail pane naming the other row."""
    lags = []
    for n in range(count):
        before = detail_line(await app.tmux.screen(app.session))
        start = time.perf_counter()
        await app.tmux.keys(app.session, "Down" if n % 2 == 0 else "Up")
        deadline = start + LAG_LIMIT
        while detail_line(await app.tmux.screen(app.session)) == before:
            if time.perf_counter() > deadline:
                raise RuntimeError("the selection never moved")
            await asyncio.sleep(POLL)
        lags.append(time.perf_counter() - start)
        await asyncio.sleep(0.2)  # keys a user presses, not a burst
    return lags


@contextlib.contextmanager
def python_of(src: str | None) -> Iterator[None]:
    """The dashboard's process runs the tree at `src` (None: this one): `tui()` starts
    `sys.executable`, here a wrapper that puts `src` first on PYTHONPATH."""
    if src is None:
        yield
        return
    with tempfile.TemporaryDirectory(prefix="portfwd-bench-before-") as tmp:
        wrapper = Path(tmp) / "python"
        wrapper.write_text(
            f'#!/bin/sh\nPYTHONPATH={shlex.quote(src)} exec {shlex.quote(sys.executable)} "$@"\n'
        )
        wrapper.chmod(0o755)
        real, sys.executable = sys.executable, str(wrapper)
        try:
            yield
        finally:
            sys.executable = real


async def dashboard_figures(
    tmux: Tmux,
    kubeconfig: str,
    forwards: int,
    idle: float,
    seconds: float,
    keys: int,
    src: str | None = None,
) -> dict[str, object]:
    with python_of(src):
        return await _dashboard_figures(tmux, kubeconfig, forwards, idle, seconds, keys)


async def _dashboard_figures(
    tmux: Tmux, kubeconfig: str, forwards: int, idle: float, seconds: float, keys: int
) -> dict[str, object]:
    async with tui(tmux, ["--kubeconfig", kubeconfig], forwards) as app:
        # The forwards run in the dashboard's engine process (or in the app, with --before
        # a tree that has none): the listeners and the load's CPU are that process's too.
        engine = await listener_of(app.pid, forwards)
        also = app.pid if engine != app.pid else None
        ports = await ready_ports(engine, forwards)
        await tmux.wait_for(
            app.session,
            lambda s: ACTIVE in s and not any(w in s for w in ("starting", "reconnecting")),
            "the rows on screen active",
        )
        await tmux.keys(app.session, "Home")
        # The readiness echoes moved bytes: their sparklines drain for SPARK seconds (the
        # rows redraw each second meanwhile); idle is after that.
        await asyncio.sleep(SPARK_DRAIN)
        _mem, idle_cpu = await idle_figures(app.pid, idle)
        idle_lags = await key_lags(app, keys)
        loading = asyncio.create_task(load(engine, ports, seconds, also=also))
        await asyncio.sleep(min(2.0, seconds / 4))  # the load and the rates are under way
        busy_lags = await key_lags(app, keys)
        echo = await loading
        rate_shown = "↓" in await tmux.screen(app.session)
    async with headless(kubeconfig, forwards) as h:
        _mem, headless_cpu = await idle_figures(h.proc.pid, idle)
    return {
        "idle_cpu": idle_cpu,
        "headless_cpu": headless_cpu,
        "idle_lags": idle_lags,
        "busy_lags": busy_lags,
        "echo": echo,
        "rate_shown": rate_shown,
    }


async def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--mb", type=int, default=256, help="MiB of big responses per round")
    parser.add_argument("--requests", type=int, default=2000, help="small requests per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--forwards", type=int, default=50)
    parser.add_argument("--idle", type=float, default=10.0, help="seconds of idle CPU sampling")
    parser.add_argument("--seconds", type=float, default=10.0, help="seconds of echo load")
    parser.add_argument("--keys", type=int, default=20, help="key presses per lag figure")
    parser.add_argument(
        "--before", help="another tree's src/ (e.g. main's): its dashboard measured the same way"
    )
    args = parser.parse_args()
    if shutil.which("tmux") is None:
        sys.exit("tmux is not on PATH")
    print(
        f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, loadavg "
        f"{os.getloadavg()[0]:.1f}; sandbox in another process, loopback"
    )
    tmux = Tmux()
    try:
        async with sandbox_process() as (kubeconfig, _direct):
            http = await http_log_figures(kubeconfig, args.mb, args.requests, args.rounds)
            dash = await dashboard_figures(
                tmux, kubeconfig, args.forwards, args.idle, args.seconds, args.keys
            )
            before = None
            if args.before:
                before = await dashboard_figures(
                    tmux, kubeconfig, args.forwards, args.idle, args.seconds, args.keys, args.before
                )
    finally:
        await tmux.kill()

    print(
        f"\n1. HTTP request log ({args.mb} MiB of /bytes/N and {args.requests} small requests "
        f"per round, {args.rounds} interleaved rounds, medians; baseline: --http-log off)"
    )
    print("| forwarder | MB/s | CPU s per GiB | small req/s | CPU ms per 1,000 req |")
    print("| --- | --- | --- | --- | --- |")
    for label in ("off", "on"):
        row = http[label]
        print(
            f"| portfwd forward --http-log {label} | {row['mbs']:.0f} | {row['cpu_gib']:.2f} | "
            f"{row['rps']:.0f} | {row['cpu_k']:.0f} |"
        )
    n = args.forwards
    idle_cpu, headless_cpu = dash["idle_cpu"], dash["headless_cpu"]
    assert isinstance(idle_cpu, float) and isinstance(headless_cpu, float)
    print(f"\n2. idle CPU over {args.idle:.0f} s, % of one core (baseline: headless)")
    print(f"| portfwd forward (headless), {n} forwards | {headless_cpu:.2%} |")
    print(f"| dashboard, {n} active forwards | {idle_cpu:.2%} |")
    if before is not None:
        print(f"| dashboard of --before, {n} active forwards | {before['idle_cpu']:.2%} |")
    idle_lags, busy_lags, echo = dash["idle_lags"], dash["busy_lags"], dash["echo"]
    assert isinstance(idle_lags, list) and isinstance(busy_lags, list)
    print(
        f"\n3. UI lag, key -> selection shown, ms ({args.keys} keys each; baseline: the idle "
        f"dashboard), {n} forwards each echoing 4 KiB every 50 ms"
    )
    print("| dashboard | p50 | p90 | max |")
    print("| --- | --- | --- | --- |")
    rows = [("idle (baseline)", idle_lags), (f"{n} forwards moving", busy_lags)]
    if before is not None:
        rows += [
            ("--before, idle", before["idle_lags"]),
            (f"--before, {n} forwards moving", before["busy_lags"]),
        ]
    for label, lags in rows:
        assert isinstance(lags, list)
        print(f"| {label} | {ms(lags, 0.5):.0f} | {ms(lags, 0.9):.0f} | {ms(lags, 1.0):.0f} |")
    print(
        f"echo under that load: p50 {ms(echo.probe, 0.5):.1f} ms, p99 (all) "  # type: ignore[attr-defined]
        f"{ms(echo.all_rtts, 0.99):.1f} ms, {echo.echoes} echoes, dashboard CPU "  # type: ignore[attr-defined]
        f"{echo.cpu:.0%} of one core; rate column shown: {dash['rate_shown']}"  # type: ignore[attr-defined]
    )


if __name__ == "__main__":
    asyncio.run(main())
