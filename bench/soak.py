"""The soak: many forwards, every wire protocol, concurrent echo clients for minutes, optional
pod deletions. Reports the connections that came back with nothing (lost), the transfers cut
short, the bytes intact, and the forwarder's RSS and open descriptors over time.

Processes: the sandbox cluster (its own process; it deletes pods when told), the forwarder
(`portfwd daemon` in a temporary config and runtime dir with forwards added by `portfwd add`,
or a Manager in this process with `--mode inprocess`), this script's clients. Every forward
targets svc/echo (two pods). Each client loop opens a connection, sends 1 KiB-10 MiB (log-
uniform), half-closing after it or not (full duplex: it reads while it sends), checks every
byte that comes back, closes, waits 0-0.3 s, again.

Target: no lost or cut-short transfer without faults. With `--delete-every S` a random echo
pod is deleted every S seconds: only transfers the pod had already answered when it was
deleted may fail, cut short ("cut at del.": open during a deletion, some bytes back). One
that got nothing back never reached a pod that answered: it must be retried on another pod,
whenever it was opened ("at del." counts every failure open during a deletion, as before).

Usage: .venv/bin/python bench/soak.py [--minutes 10] [--forwards 8] [--clients 2]
       [--protocols auto,spdy,websocket,v4] [--max-size 10485760] [--delete-every 0]
       [--mode daemon|inprocess] [--sample 30] [--settle 45] [--seed 1]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import random
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

from throughput import script_process  # a sibling script, not a package

SANDBOX_SCRIPT = """
import asyncio, json, sys
from portfwd.sandbox.cluster import SandboxCluster

async def main():
    async with SandboxCluster() as sb:
        print(json.dumps({"kubeconfig": str(sb.kubeconfig_path)}), flush=True)
        loop = asyncio.get_running_loop()
        while line := await loop.run_in_executor(None, sys.stdin.readline):
            pods = sb.pod_names("demo", {"app": "echo"})
            if line.strip() == "delete" and pods:
                pod = pods[int.from_bytes(__import__("os").urandom(2)) % len(pods)]
                await sb.delete_pod("demo", pod)
                print(json.dumps({"deleted": pod}), flush=True)
            else:
                print(json.dumps({"deleted": None}), flush=True)

asyncio.run(main())
"""
BLOCK = 64 * 1024
TRANSFER_TIMEOUT = 120.0


@dataclass
class Tally:
    transfers: int = 0
    intact: int = 0
    lost: int = 0  # nothing came back
    cut: int = 0  # some came back, not all
    corrupted: int = 0
    during_deletion: int = 0  # of the failures, those open while a pod was deleted
    excused: int = 0  # of those, the ones cut short after the pod had answered
    bytes_back: int = 0
    failures: list[str] = field(default_factory=list)

    def add(self, other: Tally) -> None:
        for name in (
            "transfers",
            "intact",
            "lost",
            "cut",
            "corrupted",
            "during_deletion",
            "excused",
        ):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.bytes_back += other.bytes_back
        self.failures += other.failures

    @property
    def unexplained(self) -> int:
        return self.lost + self.cut + self.corrupted - self.excused


@dataclass
class Sample:
    at: float
    rss_mib: float
    fds: int
    transfers: int
    failed: int


@dataclass
class Report:
    per_protocol: dict[str, Tally]
    samples: list[Sample]
    rss_after_mib: float
    deletions: int
    seconds: float
    fds_after: int = 0  # open descriptors of the forwarder once it settled
    rss_parts: str = ""  # what the RSS is made of, start -> once it settled

    @property
    def total(self) -> Tally:
        out = Tally()
        for tally in self.per_protocol.values():
            out.add(tally)
        return out


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def rss_parts(pid: int) -> dict[str, float]:
    """RSS in MiB by what holds it: each mapping's `Rss` from smaps, summed by its name
    (`[heap]`, a library's path, `[anon]` for anonymous mmaps: thread arenas, Python's
    arenas, big buffers). A library's pages are code touched once, not memory held."""
    parts: dict[str, float] = {}
    name = "[anon]"
    for line in Path(f"/proc/{pid}/smaps").read_text().splitlines():
        head = line.split()
        if not head:
            continue
        if "-" in head[0] and not head[0].endswith(":"):  # a mapping's first line
            name = head[5] if len(head) > 5 else "[anon]"
        elif head[0] == "Rss:":
            parts[name] = parts.get(name, 0.0) + int(head[1]) / 1024
    return parts


def parts_text(before: dict[str, float], after: dict[str, float]) -> str:
    """Anonymous and file-backed RSS, before -> after, and the names that grew most."""

    def split(parts: dict[str, float]) -> tuple[float, float]:
        files = sum(v for k, v in parts.items() if k.startswith("/"))
        return sum(parts.values()) - files, files

    (anon0, file0), (anon1, file1) = split(before), split(after)
    grew = sorted(
        ((after.get(k, 0.0) - before.get(k, 0.0), k) for k in set(before) | set(after)),
        reverse=True,
    )[:4]
    most = ", ".join(f"{Path(k).name or k} {d:+.1f}" for d, k in grew if d >= 0.05)
    return (
        f"anonymous {anon0:.1f} -> {anon1:.1f} MiB, files (code and data of libraries) "
        f"{file0:.1f} -> {file1:.1f} MiB; grew most: {most}"
    )


def fd_count(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


async def transfer(port: int, size: int, half_close: bool, rng: random.Random) -> tuple[int, bool]:
    """One echo: (bytes that came back intact in order, whether all of it did and no byte
    differed). Raises nothing: a reset or a timeout ends it with what arrived."""
    block = rng.randbytes(BLOCK)
    got = 0
    ok = True
    writer: asyncio.StreamWriter | None = None
    try:
        async with asyncio.timeout(TRANSFER_TIMEOUT):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            out = writer

            async def send() -> None:
                sent = 0
                while sent < size:
                    n = min(BLOCK, size - sent)
                    out.write(block[:n] if n < BLOCK else block)
                    await out.drain()
                    sent += n
                if half_close:
                    out.write_eof()

            sender = asyncio.create_task(send())
            try:
                while got < size:
                    chunk = await reader.read(BLOCK)
                    if not chunk:
                        break
                    offset = got % BLOCK
                    view = memoryview(chunk)
                    while view:
                        n = min(len(view), BLOCK - offset)
                        if view[:n] != block[offset : offset + n]:
                            ok = False
                        view = view[n:]
                        offset = 0
                    got += len(chunk)
                await sender
            finally:
                sender.cancel()
                await asyncio.gather(sender, return_exceptions=True)
    except (OSError, TimeoutError, asyncio.IncompleteReadError):
        pass
    finally:
        if writer is not None:
            writer.close()
    return got, ok and got == size


def pick_size(rng: random.Random, smallest: int, largest: int) -> int:
    return int(math.exp(rng.uniform(math.log(smallest), math.log(largest))))


class Deletions:
    """When pods were deleted, to excuse the transfers open then: each deletion is the span
    from asking the sandbox to its answer (loop times), as the client cannot see the exact
    moment inside it."""

    def __init__(self) -> None:
        self.spans: list[tuple[float, float]] = []

    @property
    def times(self) -> list[float]:
        return [asked for asked, _ in self.spans]

    def overlaps(self, start: float, end: float) -> bool:
        return any(start <= done and asked <= end for asked, done in self.spans)


async def client_loop(
    port: int,
    tally: Tally,
    until: float,
    rng: random.Random,
    args: argparse.Namespace,
    deletions: Deletions,
) -> None:
    loop = asyncio.get_running_loop()
    while loop.time() < until:
        size = pick_size(rng, args.min_size, args.max_size)
        half_close = rng.random() < 0.5
        start = loop.time()
        got, intact = await transfer(port, size, half_close, rng)
        tally.transfers += 1
        tally.bytes_back += got
        if intact:
            tally.intact += 1
        else:
            if got == 0:
                tally.lost += 1
            elif got < size:
                tally.cut += 1
            else:
                tally.corrupted += 1
            if deletions.overlaps(start, loop.time()):
                tally.during_deletion += 1
                if 0 < got < size:
                    tally.excused += 1
            mode = "half-close" if half_close else "duplex"
            began = time.strftime("%H:%M:%S", time.localtime(time.time() - (loop.time() - start)))
            tally.failures.append(f"{began} port {port}: {got}/{size} bytes ({mode})")
        await asyncio.sleep(rng.random() * 0.3)


# --- the forwarders ---------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def sandbox_process() -> AsyncIterator[tuple[str, asyncio.subprocess.Process]]:
    async with script_process(SANDBOX_SCRIPT) as (info, proc):
        yield info["kubeconfig"], proc


async def run_cli(env: dict[str, str], *argv: str) -> str:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "portfwd",
        *argv,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    if proc.returncode != 0:
        raise RuntimeError(f"portfwd {' '.join(argv)}: {err.decode().strip()}")
    return out.decode()


def copy_log(log: Path, to: str) -> None:
    if log.exists():
        shutil.copyfile(log, to)


@contextlib.asynccontextmanager
async def daemon_forwards(
    kubeconfig: str, plan: list[str], keep_log: str | None = None
) -> AsyncIterator[tuple[int, dict[str, list[int]]]]:
    """`portfwd daemon` in its own temporary dirs, a forward per entry of `plan` (its
    protocol) -> (daemon pid, local ports by protocol). `keep_log`: where to copy the
    daemon's log when it stopped."""
    with tempfile.TemporaryDirectory(prefix="pf-soak-") as tmp:
        env = {
            **os.environ,
            "PORTFWD_CONFIG_DIR": str(Path(tmp) / "config"),
            "PORTFWD_RUNTIME_DIR": str(Path(tmp) / "run"),
        }
        daemon = await asyncio.create_subprocess_exec(
            sys.executable,
            *("-m", "portfwd", "daemon", "--kubeconfig", kubeconfig),
            env=env,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )
        try:
            for _ in range(300):
                with contextlib.suppress(RuntimeError):
                    await run_cli(env, "daemon", "status")
                    break
                await asyncio.sleep(0.1)
            for i, protocol in enumerate(plan):
                await run_cli(
                    env,
                    *("add", "-n", "demo", "--name", f"s{i}", "--protocol", protocol),
                    *("--kubeconfig", kubeconfig, "--address", "127.0.0.1", "svc/echo", ":80"),
                )
            listed = json.loads(await run_cli(env, "ls", "-o", "json"))
            rows = listed["forwards"] if isinstance(listed, dict) else listed
            ports: dict[str, list[int]] = {}
            for row in rows:
                protocol = row["spec"].get("protocol", "auto")
                ports.setdefault(protocol, []).append(int(row["local_port"]))
            yield daemon.pid, ports
        finally:
            if daemon.returncode is None:
                daemon.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(daemon.wait(), 30)
            except TimeoutError:
                daemon.kill()
                await daemon.wait()
            if keep_log:
                await asyncio.to_thread(copy_log, Path(tmp) / "config" / "daemon.log", keep_log)


@contextlib.asynccontextmanager
async def inprocess_forwards(
    kubeconfig: str, plan: list[str], keep_log: str | None = None
) -> AsyncIterator[tuple[int, dict[str, list[int]]]]:
    """A Manager in this process, a forward per entry of `plan` -> (this pid, ports)."""
    from portfwd.engine.manager import Manager
    from portfwd.engine.model import ForwardSpec, ForwardState

    manager = Manager(kubeconfig=kubeconfig)
    try:
        ports: dict[str, list[int]] = {}
        for protocol in plan:
            spec = ForwardSpec(
                target="svc/echo", remote_port=80, namespace="demo", protocol=protocol
            )
            snap = manager.get(await manager.add(spec))
            if snap.state is not ForwardState.ACTIVE:
                raise RuntimeError(f"forward on {protocol} did not start: {snap.reason}")
            ports.setdefault(protocol, []).append(snap.local_port)
        yield os.getpid(), ports
    finally:
        await asyncio.wait_for(manager.shutdown(), 30)


# --- the run ---------------------------------------------------------------------------------


async def soak(args: argparse.Namespace) -> Report:
    protocols = args.protocols.split(",")
    plan = [protocols[i % len(protocols)] for i in range(args.forwards)]
    forwards = daemon_forwards if args.mode == "daemon" else inprocess_forwards
    loop = asyncio.get_running_loop()
    async with (
        sandbox_process() as (kubeconfig, sandbox),
        forwards(kubeconfig, plan, args.keep_log) as (
            pid,
            ports,
        ),
    ):
        tallies = {protocol: Tally() for protocol in ports}
        deletions = Deletions()
        start = loop.time()
        until = start + args.minutes * 60
        samples = [Sample(0.0, rss_mib(pid), fd_count(pid), 0, 0)]
        parts_before = rss_parts(pid)
        rng = random.Random(args.seed)
        clients = [
            asyncio.create_task(
                client_loop(
                    port,
                    tallies[protocol],
                    until,
                    random.Random(rng.random()),
                    args,
                    deletions,
                )
            )
            for protocol, plist in ports.items()
            for port in plist
            for _ in range(args.clients)
        ]

        async def deleter() -> None:
            assert sandbox.stdin is not None and sandbox.stdout is not None
            while loop.time() + args.delete_every < until:
                await asyncio.sleep(args.delete_every)
                asked = loop.time()
                sandbox.stdin.write(b"delete\n")
                await sandbox.stdin.drain()
                answer = json.loads(await sandbox.stdout.readline())
                deletions.spans.append((asked, loop.time()))
                if not args.quiet:
                    print(
                        f"  {time.strftime('%H:%M:%S')} deleted {answer['deleted']}",
                        file=sys.stderr,
                    )

        async def sampler() -> None:
            while True:
                await asyncio.sleep(args.sample)
                total = sum(t.transfers for t in tallies.values())
                failed = sum(t.lost + t.cut + t.corrupted for t in tallies.values())
                sample = Sample(loop.time() - start, rss_mib(pid), fd_count(pid), total, failed)
                samples.append(sample)
                if not args.quiet:
                    print(
                        f"  {sample.at:7.0f} s  {total:7d} transfers  {failed:4d} failed  "
                        f"RSS {sample.rss_mib:7.1f} MiB  {sample.fds:5d} fds",
                        file=sys.stderr,
                    )

        helpers = [asyncio.create_task(sampler())]
        if args.delete_every > 0:
            helpers.append(asyncio.create_task(deleter()))
        try:
            await asyncio.gather(*clients)
        finally:
            for task in helpers:
                task.cancel()
            await asyncio.gather(*helpers, return_exceptions=True)
        seconds = loop.time() - start
        total = sum(t.transfers for t in tallies.values())
        failed = sum(t.lost + t.cut + t.corrupted for t in tallies.values())
        samples.append(Sample(seconds, rss_mib(pid), fd_count(pid), total, failed))
        await asyncio.sleep(args.settle)
        after = rss_mib(pid)
        fds_after = fd_count(pid)
        parts = parts_text(parts_before, rss_parts(pid))
    return Report(tallies, samples, after, len(deletions.times), seconds, fds_after, parts)


def print_report(report: Report, args: argparse.Namespace) -> None:
    print(
        f"\nsoak: {report.seconds:.0f} s, {args.forwards} forwards x {args.clients} clients, "
        f"{args.min_size}-{args.max_size} bytes per echo, mode {args.mode}, "
        f"{report.deletions} pod deletions"
    )
    print(
        f"  {'protocol':<10}{'transfers':>10}{'intact':>8}{'lost':>6}{'cut':>6}"
        f"{'corrupt':>8}{'at del.':>8}{'cut at del.':>12}{'MB back':>9}"
    )
    rows = [*report.per_protocol.items(), ("all", report.total)]
    for name, t in rows:
        print(
            f"  {name:<10}{t.transfers:>10}{t.intact:>8}{t.lost:>6}{t.cut:>6}"
            f"{t.corrupted:>8}{t.during_deletion:>8}{t.excused:>12}{t.bytes_back / 1e6:>9.0f}"
        )
    first, peak = report.samples[0], max(report.samples, key=lambda s: s.rss_mib)
    last = report.samples[-1]
    print(
        f"  RSS MiB: start {first.rss_mib:.1f}, peak {peak.rss_mib:.1f}, end {last.rss_mib:.1f}, "
        f"{args.settle:g} s after {report.rss_after_mib:.1f}; fds: start {first.fds}, "
        f"peak {max(s.fds for s in report.samples)}, end {last.fds}, "
        f"{args.settle:g} s after {report.fds_after}"
    )
    if report.rss_parts:
        print(f"  RSS parts: {report.rss_parts}")
    print(
        "  failures, but for transfers cut short after their pod answered and was deleted: "
        f"{report.total.unexplained}"
    )
    for line in report.total.failures[:20]:
        print(f"    {line}")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    p.add_argument("--minutes", type=float, default=10.0)
    p.add_argument("--forwards", type=int, default=8)
    p.add_argument("--clients", type=int, default=2, help="concurrent clients per forward")
    p.add_argument("--protocols", default="auto,spdy,websocket,v4")
    p.add_argument("--min-size", type=int, default=1024)
    p.add_argument("--max-size", type=int, default=10 * 1024 * 1024)
    p.add_argument("--delete-every", type=float, default=0.0, help="seconds; 0: no deletions")
    p.add_argument("--mode", choices=("daemon", "inprocess"), default="daemon")
    p.add_argument("--sample", type=float, default=30.0, help="seconds between RSS samples")
    p.add_argument(
        "--settle",
        type=float,
        default=45.0,
        help="seconds before the last RSS (v4 keeps a finished client's tunnel up to 30 s)",
    )
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--quiet", action="store_true")
    p.add_argument("--keep-log", help="daemon mode: copy the daemon's log here at the end")
    return p


async def main() -> None:
    args = parser().parse_args()
    started = time.strftime("%Y-%m-%d %H:%M:%S")
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, started {started}")
    print_report(await soak(args), args)


if __name__ == "__main__":
    asyncio.run(main())
