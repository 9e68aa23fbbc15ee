"""How fast `portfwd` forwards recover when pods or the API server go away, printed in one run.

Everything measured runs in this process, on one event loop: the sandbox cluster
(`SandboxCluster`: API server, controllers, fake kubelet and backends, TLS on loopback), a
real `portfwd.engine.Manager` (the engine behind `portfwd forward` and the dashboard), and
the client. In-process, because every moment compared then comes from one clock
(`time.perf_counter()`) with no pipe or process hop in between. Only the baselines of part 2
are separate processes: `portfwd forward` (the CLI) and `kubectl port-forward`, both against
the sandbox's kubeconfig. Parts 1 and 2 run against the default sandbox (a deleted pod's
connections drop at once and new dials are refused) and against
`SandboxCluster(terminating_keeps_connections=True)` (like a real kubelet: the terminating
container keeps serving until it is gone, `termination_grace` = 0.2 s later). New pods turn
Ready `replacement_ready_delay` = 0.5 s after they are created.

The workload: deployment `app` behind svc/app (port 80 -> targetPort `line` -> 9000) whose
backend answers each line with `<pod name> <line>`, so the client knows which pod answered.
A request = a fresh connection, `ping\n` out, `<pod> ping\n` back, bounded by 2 s.

1. Pod replacement (1 replica, one forward to svc/app). Per run: delete the pod; right after,
   a client loops requests through the forward (5 ms apart after a failure) until a pod
   other than the deleted one answers. The replacement's Ready moment is taken by a
   synchronous listener on the sandbox's store (`Store.listeners`): it runs inside the very
   write that flips the new pod's Ready condition to True (the same loop step then updates
   the EndpointSlices and queues the watch events), so it is exact. The condition's
   `lastTransitionTime` has one-second resolution, and `sandbox.wait_for()` wakes only after
   the controllers' sync and a loop turn, so neither is as precise. Printed, median and max
   over `--runs`: replacement Ready -> the new pod's first answer, deletion -> that answer.
2. Rolling restart (3 replicas, surge 1, none unavailable): one request every 10 ms through
   the forwarder for the whole `rollout_restart` + `wait_rollout`; requests total / failed
   for portfwd (in-process Manager, reconnect on), `portfwd forward` (CLI subprocess) and
   `kubectl port-forward svc/app` (subprocess; it stays on the pod it picked at start and
   exits with "lost connection to pod" when that pod goes). A fresh forwarder per rollout,
   `--rollouts` rollouts each.
3. API server outage (default sandbox): 20 forwards (10 to svc/app, 10 to deploy/app); the
   API server is stopped for 5 s (`stop_api`) and started on the same port (`start_api`).
   Printed: stop -> all RECONNECTING, start_api -> all ACTIVE, then a request through each.

Usage: .venv/bin/python bench/reconnect.py [--runs 20] [--rollouts 3] [--forwards 20]
       [--outage 5] [--quick]
`--quick`: 3 runs, 1 rollout, a 2 s outage, default sandbox only (a smoke run, ~15 s).
Note: sandbox, engine and client share one event loop, so every figure includes some loop
contention; the sandbox's kubelet is Python (a real one is Go).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import re
import shutil
import signal
import statistics
import sys
import time
from collections import Counter, deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from kubectl_vs_portfwd import kubectl_version  # a sibling script, not a package

from portfwd.engine.manager import Manager
from portfwd.engine.model import ForwardSnapshot, ForwardSpec, ForwardState, LogLevel
from portfwd.sandbox.cluster import SandboxCluster
from portfwd.sandbox.store import Event

NS = "bench"
APP = "app"
PAYLOAD = b"ping\n"
ATTEMPT_TIMEOUT = 2.0  # one connect + echo, bounded
RETRY_PAUSE = 0.005  # between failed attempts (part 1)
REQUEST_PERIOD = 0.010  # start-to-start of the requests during a rollout (part 2)
FORWARDING_RE = re.compile(r"^Forwarding from (\S+):(\d+) -> (\d+)$")
LIMIT = 60.0  # any single wait in this script
AFTER_PAUSE = 0.3  # part 2: then AFTER_REQUESTS requests, 50 ms apart: does it still work?
AFTER_REQUESTS = 5


def topology(replicas: int) -> dict[str, Any]:
    return {
        "namespaces": [
            {
                "name": NS,
                "deployments": [
                    {
                        "name": APP,
                        "replicas": replicas,
                        "labels": {"app": APP},
                        "containers": [
                            {
                                "name": APP,
                                "image": "sandbox/line:1.0",
                                "ports": [
                                    {"name": "line", "containerPort": 9000, "backend": "line"}
                                ],
                            }
                        ],
                    }
                ],
                "services": [
                    {
                        "name": APP,
                        "selector": {"app": APP},
                        "ports": [{"name": "tcp", "port": 80, "targetPort": "line"}],
                    }
                ],
            }
        ]
    }


# -- client ----------------------------------------------------------------------------------


async def ask(port: int) -> tuple[str | None, str | None]:
    """One fresh connection, one line out, `<pod> <line>` back, within ATTEMPT_TIMEOUT:
    (the pod that answered, None) or (None, why it failed)."""
    writer: asyncio.StreamWriter | None = None
    try:
        async with asyncio.timeout(ATTEMPT_TIMEOUT):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(PAYLOAD)
            await writer.drain()
            got = await reader.readuntil(b"\n")
        pod, _, rest = got.partition(b" ")
        return (pod.decode(), None) if rest == PAYLOAD else (None, "wrong answer")
    except (TimeoutError, ConnectionRefusedError, asyncio.IncompleteReadError, OSError) as exc:
        return None, _why(exc)
    finally:
        if writer is not None:
            writer.close()


def _why(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "timeout"
    if isinstance(exc, ConnectionRefusedError):
        return "refused"
    if isinstance(exc, asyncio.IncompleteReadError):
        return "closed"
    return type(exc).__name__


async def echo_once(port: int) -> str | None:
    """None when a pod answered, else why not."""
    return (await ask(port))[1]


async def first_success(port: int, old: set[str]) -> tuple[float, int, int]:
    """Loop attempts until a pod not in `old` answers: (perf_counter at that answer, failed
    attempts, attempts the old (terminating) pod still answered)."""
    failed = by_old = 0
    while True:
        pod, _ = await ask(port)
        if pod is not None and pod not in old:
            return time.perf_counter(), failed, by_old
        if pod is None:
            failed += 1
        else:
            by_old += 1
        await asyncio.sleep(RETRY_PAUSE)


@dataclass
class Tally:
    total: int = 0
    failed: int = 0
    why: Counter[str] = field(default_factory=Counter)
    first_fail: float | None = None  # seconds after the loop started
    last_fail: float | None = None
    after_ok: int = 0  # requests answered once the rollout was over (see AFTER_REQUESTS)
    after_total: int = 0

    def add(self, other: Tally) -> None:
        self.total += other.total
        self.failed += other.failed
        self.why.update(other.why)
        self.after_ok += other.after_ok
        self.after_total += other.after_total


async def request_loop(port: int, tally: Tally, stop: asyncio.Event) -> None:
    """One short echo request every REQUEST_PERIOD (or right after a slow one) until stop."""
    start = time.perf_counter()
    next_at = start
    while not stop.is_set():
        why = await echo_once(port)
        tally.total += 1
        if why is not None:
            tally.failed += 1
            tally.why[why] += 1
            now = time.perf_counter() - start
            tally.first_fail = now if tally.first_fail is None else tally.first_fail
            tally.last_fail = now
        next_at += REQUEST_PERIOD
        delay = next_at - time.perf_counter()
        if delay > 0:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay):
                    await stop.wait()
        else:
            next_at = time.perf_counter()


# -- engine helpers --------------------------------------------------------------------------


async def until(
    manager: Manager, pred: Callable[[list[ForwardSnapshot]], bool], within: float = LIMIT
) -> float | None:
    """perf_counter when `pred(manager.snapshot())` first holds (checked on every engine
    event); None on timeout."""
    sub = manager.subscribe(maxsize=100_000)
    try:
        async with asyncio.timeout(within):
            while not pred(manager.snapshot()):
                await sub.get()
        return time.perf_counter()
    except TimeoutError:
        return None
    finally:
        sub.close()


def all_in(state: ForwardState) -> Callable[[list[ForwardSnapshot]], bool]:
    return lambda snaps: all(s.state is state for s in snaps)


@contextlib.asynccontextmanager
async def engine(sb: SandboxCluster) -> AsyncIterator[Manager]:
    manager = Manager(kubeconfig=str(sb.kubeconfig_path))
    try:
        yield manager
    finally:
        await asyncio.wait_for(manager.shutdown(), 15)


async def add_forward(manager: Manager, target: str) -> tuple[str, int]:
    """svc/app port 80, or a workload's container port 9000 (as kubectl reads the port)."""
    remote = 80 if target.startswith("svc/") else 9000
    fid = await manager.add(ForwardSpec(target, remote, namespace=NS))
    if await until(manager, lambda _: manager.get(fid).state is ForwardState.ACTIVE) is None:
        snap = manager.get(fid)
        raise RuntimeError(f"forward {target} not active: {snap.state.value} {snap.reason}")
    return fid, manager.get(fid).local_port


def ready(pod: dict[str, Any]) -> bool:
    conds = pod.get("status", {}).get("conditions", [])
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conds)


def settled(sb: SandboxCluster, replicas: int) -> Callable[[], bool]:
    """Exactly `replicas` pods, all Ready, none terminating."""

    def check() -> bool:
        pods = sb.store.list("pods", NS)
        return (
            len(pods) == replicas
            and all(ready(p) for p in pods)
            and not any(p["metadata"].get("deletionTimestamp") for p in pods)
        )

    return check


# -- part 1 ----------------------------------------------------------------------------------


@dataclass
class ReplaceRun:
    ready_to_ok: float
    delete_to_ok: float
    delete_to_ready: float
    failed_attempts: int
    old_answers: int  # attempts the terminating pod still answered


async def replacement_runs(sb: SandboxCluster, runs: int) -> tuple[list[ReplaceRun], list[str]]:
    notes: list[str] = []
    out: list[ReplaceRun] = []
    async with engine(sb) as manager:
        fid, port = await add_forward(manager, f"svc/{APP}")
        for _ in range(5):  # warm-up: TLS sessions, backends
            if await echo_once(port) is not None:
                raise RuntimeError("warm-up request failed")
        for i in range(runs):
            old = {p["metadata"]["name"] for p in sb.store.list("pods", NS)}
            (victim,) = sb.pod_names(NS)
            ready_at: list[float] = []

            def on_event(ev: Event, old: set[str] = old, ready_at: list[float] = ready_at) -> None:
                if ev.resource != "pods" or ev.namespace != NS or ready_at:
                    return
                if ev.new["metadata"]["name"] in old:
                    return
                if ready(ev.new) and not (ev.old is not None and ready(ev.old)):
                    ready_at.append(time.perf_counter())

            sb.store.listeners.append(on_event)
            try:
                t_delete = time.perf_counter()
                await sb.delete_pod(NS, victim)
                async with asyncio.timeout(LIMIT):
                    t_ok, failed, by_old = await first_success(port, old)
            finally:
                sb.store.listeners.remove(on_event)
            if not ready_at:
                raise RuntimeError(f"run {i + 1}: a new pod answered before any was Ready")
            out.append(
                ReplaceRun(
                    t_ok - ready_at[0], t_ok - t_delete, ready_at[0] - t_delete, failed, by_old
                )
            )
            if not await sb.wait_for(settled(sb, 1), LIMIT):
                raise RuntimeError("the old pod did not go away")
            (new,) = sb.pod_names(NS)

            def on_new(_: list[ForwardSnapshot], new: str = new) -> bool:
                snap = manager.get(fid)
                return snap.state is ForwardState.ACTIVE and snap.pod == new

            if await until(manager, on_new) is None:
                snap = manager.get(fid)
                notes.append(
                    f"run {i + 1}: forward not ACTIVE on the new pod {new} after {LIMIT:g} s: "
                    f"{snap.state.value} on {snap.pod} ({snap.reason})"
                )
        snap = manager.get(fid)
        notes.append(
            f"forward after {runs} runs: {snap.state.value}, reconnects={snap.stats.reconnects}, "
            f"connections={snap.stats.connections_total}, errors={snap.stats.errors}"
        )
    return out, notes


def clip(text: str, width: int = 110) -> str:
    return text if len(text) <= width else text[: width - 3] + "..."


def ms(values: list[float]) -> str:
    return f"{statistics.median(values) * 1000:8.1f} {max(values) * 1000:8.1f}"


# -- part 2 ----------------------------------------------------------------------------------


@dataclass
class Proc:
    proc: asyncio.subprocess.Process
    port: int
    stderr: deque[str]
    exited_at: float | None = None


@contextlib.asynccontextmanager
async def subprocess_forwarder(
    argv: list[str], env: dict[str, str] | None = None
) -> AsyncIterator[Proc]:
    """A forwarder printing kubectl's `Forwarding from` line; its stderr is kept (last 50
    lines); stopped with SIGTERM (then SIGKILL) on the way out."""
    proc = await asyncio.create_subprocess_exec(
        *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env
    )
    assert proc.stdout is not None and proc.stderr is not None
    stderr: deque[str] = deque(maxlen=50)
    tasks: list[asyncio.Task[None]] = []

    async def drain(stream: asyncio.StreamReader, keep: deque[str] | None) -> None:
        while line := await stream.readline():
            if keep is not None:
                keep.append(line.decode(errors="replace").rstrip())

    try:
        tasks.append(asyncio.create_task(drain(proc.stderr, stderr)))
        port = 0
        while not port:
            line = (await asyncio.wait_for(proc.stdout.readline(), LIMIT)).decode().strip()
            if not line:
                raise RuntimeError(f"{argv[0]} exited early: {' | '.join(stderr)}")
            match = FORWARDING_RE.match(line)
            if match:
                port = int(match.group(2))
        tasks.append(asyncio.create_task(drain(proc.stdout, None)))
        handle = Proc(proc, port, stderr)

        async def watch_exit() -> None:
            await proc.wait()
            handle.exited_at = time.perf_counter()

        tasks.append(asyncio.create_task(watch_exit()))
        yield handle
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(proc.wait(), 15)
        except TimeoutError:
            proc.kill()
            await proc.wait()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def kubectl_argv(sb: SandboxCluster) -> list[str]:
    kubeconfig = str(sb.kubeconfig_path)
    cache = Path(kubeconfig).parent / "kubectl-cache"
    return [
        *("kubectl", "--kubeconfig", kubeconfig, "--cache-dir", str(cache), "-n", NS),
        *("port-forward", "--address", "127.0.0.1", f"svc/{APP}", ":80"),
    ]


def portfwd_argv(sb: SandboxCluster) -> list[str]:
    return [
        *(sys.executable, "-m", "portfwd", "forward", "--kubeconfig", str(sb.kubeconfig_path)),
        *("-n", NS, "--address", "127.0.0.1", f"svc/{APP}", ":80"),
    ]


@dataclass
class RolloutResult:
    tally: Tally = field(default_factory=Tally)
    seconds: list[float] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


async def one_rollout(sb: SandboxCluster, port: int) -> tuple[Tally, float, float]:
    """Warm up, then loop requests across one rollout: (tally, rollout seconds, t0)."""
    for _ in range(3):
        if await echo_once(port) is not None:
            raise RuntimeError("warm-up request failed")
    tally, stop = Tally(), asyncio.Event()
    client = asyncio.create_task(request_loop(port, tally, stop))
    t0 = time.perf_counter()
    try:
        await sb.rollout_restart(NS, APP)
        if not await sb.wait_rollout(NS, APP, within=LIMIT):
            raise RuntimeError("the rollout did not complete")
        elapsed = time.perf_counter() - t0
    finally:
        stop.set()
        await asyncio.wait_for(client, ATTEMPT_TIMEOUT + 5)
    if not await sb.wait_for(settled(sb, 3), LIMIT):
        raise RuntimeError("pods did not settle after the rollout")
    await asyncio.sleep(AFTER_PAUSE)
    for _ in range(AFTER_REQUESTS):
        tally.after_total += 1
        tally.after_ok += await echo_once(port) is None
        await asyncio.sleep(0.05)
    return tally, elapsed, t0


async def rollouts_inprocess(sb: SandboxCluster, count: int) -> RolloutResult:
    result = RolloutResult()
    for _ in range(count):
        async with engine(sb) as manager:
            fid, port = await add_forward(manager, f"svc/{APP}")
            tally, elapsed, _ = await one_rollout(sb, port)
            result.tally.add(tally)
            result.seconds.append(elapsed)
            snap = manager.get(fid)
            if snap.state is not ForwardState.ACTIVE or tally.failed:
                result.notes.append(
                    f"after the rollout: {snap.state.value} on {snap.pod}, "
                    f"failures {dict(tally.why)}; log: "
                    + " | ".join(
                        clip(e.message)
                        for e in manager.logs(fid)
                        if e.level >= LogLevel.WARNING or e.message.startswith("switched")
                    )
                )
    return result


async def rollouts_subprocess(
    sb: SandboxCluster, count: int, argv: list[str], env: dict[str, str] | None = None
) -> RolloutResult:
    result = RolloutResult()
    for _ in range(count):
        async with subprocess_forwarder(argv, env) as fwd:
            tally, elapsed, t0 = await one_rollout(sb, fwd.port)
            result.tally.add(tally)
            result.seconds.append(elapsed)
            if fwd.exited_at is not None:
                failures = (
                    f"failures from {tally.first_fail:.2f} s: {dict(tally.why)}"
                    if tally.first_fail is not None
                    else "no failure during the rollout"
                )
                result.notes.append(
                    f"exited (code {fwd.proc.returncode}) {fwd.exited_at - t0:.2f} s after the "
                    f"restart began (rollout took {elapsed:.2f} s); {failures}; stderr: "
                    + " | ".join(clip(line) for line in list(fwd.stderr)[-2:])
                )
            elif tally.failed:
                result.notes.append(
                    f"still running; failures {tally.first_fail or 0:.2f}-"
                    f"{tally.last_fail or 0:.2f} s: {dict(tally.why)}; stderr: "
                    + " | ".join(clip(line) for line in list(fwd.stderr)[-2:])
                )
    return result


# -- part 3 ----------------------------------------------------------------------------------


async def caches_synced(manager: Manager, within: float = LIMIT) -> bool:
    """Wait (polling: the pool has no event for it) until every watch cache is synced.
    Peeks at the InformerPool's private dict: a bench script, not a front end."""
    informers = getattr(manager.informers, "_informers", {})
    deadline = time.monotonic() + within
    while not all(i.synced for i in informers.values()):
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.05)
    return True


async def api_outage(sb: SandboxCluster, forwards: int, outage: float) -> list[str]:
    lines: list[str] = []
    async with engine(sb) as manager:
        ports: dict[str, int] = {}
        for i in range(forwards):
            target = f"svc/{APP}" if i % 2 == 0 else f"deploy/{APP}"
            fid, port = await add_forward(manager, target)
            ports[fid] = port
        if any([await echo_once(p) is not None for p in ports.values()]):
            raise RuntimeError("a request failed before the outage")
        # A forward is ACTIVE before its watch caches are filled; stopping the API server
        # while their first list is in flight measures something else (see caches_synced).
        if not await caches_synced(manager):
            lines.append(f"  (watch caches not all synced within {LIMIT:g} s before the outage)")
        t_stop = time.perf_counter()
        await sb.stop_api()
        stop_took = time.perf_counter() - t_stop
        try:
            t_rec = await until(manager, all_in(ForwardState.RECONNECTING), outage)
            await asyncio.sleep(max(0.0, outage - (time.perf_counter() - t_stop)))
        finally:
            await sb.start_api()
        t_start = time.perf_counter()
        t_act = await until(manager, all_in(ForwardState.ACTIVE), LIMIT)
        if t_rec is None:
            states = Counter(s.state.value for s in manager.snapshot())
            lines.append(f"  not all RECONNECTING within the {outage:g} s outage: {dict(states)}")
        else:
            lines.append(
                f"  stop_api -> all {forwards} RECONNECTING  {(t_rec - t_stop) * 1000:8.0f} ms"
                f"   (stop_api itself took {stop_took * 1000:.0f} ms, closing connections)"
            )
        if t_act is None:
            states = Counter(s.state.value for s in manager.snapshot())
            lines.append(f"  start_api -> all ACTIVE: not within {LIMIT:g} s: {dict(states)}")
        else:
            lines.append(
                f"  start_api -> all {forwards} ACTIVE      {(t_act - t_start) * 1000:8.0f} ms"
            )
        attempts = [
            max(
                (e.message for e in manager.logs(f) if "reconnecting (attempt" in e.message),
                default="",
            )
            for f in ports
        ]
        top = max((int(m.split("attempt ")[1].split(",")[0]) for m in attempts if m), default=0)
        lines.append(f"  highest reconnect attempt logged during the outage: {top}")
        bad = [f for f, p in ports.items() if await echo_once(p) is not None]
        lines.append(
            f"  a request through each forward afterwards: {forwards - len(bad)}/{forwards} ok"
        )
    return lines


# -- main ------------------------------------------------------------------------------------


MODES = (("default sandbox", False), ("terminating_keeps_connections=True", True))


async def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--runs", type=int, default=20, help="pod replacements (part 1)")
    parser.add_argument("--rollouts", type=int, default=3, help="rollouts per forwarder (part 2)")
    parser.add_argument("--forwards", type=int, default=20, help="forwards (part 3)")
    parser.add_argument("--outage", type=float, default=5.0, help="API server down, s (part 3)")
    parser.add_argument("--quick", action="store_true", help="a fast smoke run")
    args = parser.parse_args()
    modes = MODES
    if args.quick:
        args.runs, args.rollouts, args.outage, modes = 3, 1, 2.0, MODES[:1]
    have_kubectl = shutil.which("kubectl") is not None

    print(
        f"python {sys.version.split()[0]}, {kubectl_version() if have_kubectl else 'no kubectl'}, "
        f"{os.cpu_count()} CPUs, loopback, sandbox over TLS; sandbox, engine and client in "
        "this process"
    )

    print(f"\n1. pod replacement, svc/{APP} with 1 replica, {args.runs} runs (ms)")
    print(f"  {'':<37}{'median':>8} {'max':>8}")
    for label, keep in modes:
        async with SandboxCluster(topology(1), terminating_keeps_connections=keep) as sb:
            runs, notes = await replacement_runs(sb, args.runs)
        print(f"  {label}")
        print(f"    replacement Ready -> first answer{ms([r.ready_to_ok for r in runs])}")
        print(f"    deletion -> first answer         {ms([r.delete_to_ok for r in runs])}")
        print(f"    (deletion -> replacement Ready   {ms([r.delete_to_ready for r in runs])})")
        per_run = " ".join(f"{r.ready_to_ok * 1000:.0f}" for r in runs)
        print(f"    Ready -> first answer per run: {per_run}")
        fails = [r.failed_attempts for r in runs]
        olds = [r.old_answers for r in runs]
        print(
            "    attempts before the new pod's first answer: failed "
            f"median {statistics.median(fails):g} max {max(fails)}; answered by the "
            f"terminating pod median {statistics.median(olds):g} max {max(olds)}"
        )
        for note in notes:
            print(f"    {note}")

    print(
        f"\n2. rolling restart of deploy/{APP} (3 replicas), {args.rollouts} rollout(s) per "
        f"forwarder, one request every {REQUEST_PERIOD * 1000:g} ms"
    )
    print(
        f"  {'':<45}{'requests':>9}{'failed':>8}{'rollout s':>11}"
        f"{'ok ' + str(AFTER_PAUSE) + ' s after':>16}"
    )
    for label, keep in modes:
        print(f"  {label}")
        async with SandboxCluster(topology(3), terminating_keeps_connections=keep) as sb:
            rows: list[tuple[str, RolloutResult]] = [
                (
                    "portfwd engine (in-process, reconnect on)",
                    await rollouts_inprocess(sb, args.rollouts),
                ),
                (
                    "portfwd forward (CLI subprocess)",
                    await rollouts_subprocess(sb, args.rollouts, portfwd_argv(sb)),
                ),
            ]
            if have_kubectl:
                rows.append(
                    (
                        "kubectl port-forward svc/app",
                        await rollouts_subprocess(sb, args.rollouts, kubectl_argv(sb)),
                    )
                )
        for name, res in rows:
            secs = statistics.median(res.seconds)
            after = f"{res.tally.after_ok}/{res.tally.after_total}"
            print(f"    {name:<43}{res.tally.total:9d}{res.tally.failed:8d}{secs:11.2f}{after:>16}")
            for note in res.notes:
                print(f"      {note}")

    print(
        f"\n3. API server stopped for {args.outage:g} s and started again, {args.forwards} "
        f"forwards (half svc/{APP}, half deploy/{APP}), default sandbox"
    )
    async with SandboxCluster(topology(3)) as sb:
        for line in await api_outage(sb, args.forwards, args.outage):
            print(line)


if __name__ == "__main__":
    asyncio.run(main())
