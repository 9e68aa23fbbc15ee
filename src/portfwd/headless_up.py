"""`portfwd up PROFILE [GROUP...]`: a saved profile's forwards, headless, until Ctrl-C.

Like `portfwd forward` (headless.py), with kubectl's lines, each prefixed by the name of the
forward it is about (`echo: Forwarding from 127.0.0.1:8080 -> 80`), so one profile's output
can be told apart and grepped (`| grep '^echo:'`). Warnings and failures go to stderr.

Starting follows kubectl's "fail fast": every forward is started without reconnect; one that
does not become active is one line (`NAME: error: REASON`, stderr) and is dropped, and the
others keep running (the exit code is then 1 at the end) unless `--all-or-nothing`, which
stops everything at the first failure (exit 1). Once active, a forward follows its target as
its profile says (`reconnect`); one that fails for good later is one line too. Ctrl-C or
SIGTERM stops everything.

`--dry-run` resolves each forward to its pod and port and prints where it would listen,
binding nothing (`engine.preview`). Unknown profiles and groups, and a profile with problems,
are usage errors (exit 2) that name what there is.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path

from portfwd.console import LineWriter
from portfwd.engine.clients import ClientPool
from portfwd.engine.events import ForwardChanged, Lagged, LogLine
from portfwd.engine.manager import Manager, Subscription
from portfwd.engine.model import ForwardSnapshot, ForwardSpec, ForwardState
from portfwd.engine.preview import Preview, preview
from portfwd.eventloop import release_signals, run, stop_on_signals
from portfwd.headless import _failed_for_good, _Printer
from portfwd.kube.targets import quote
from portfwd.safetext import escape_controls
from portfwd.store.profiles_select import UpUsageError, select
from portfwd.tunnel.addresses import format_host_port, parse_addresses

USAGE = 2
FAILED = 1


def run_up(
    *,
    profiles_file: Path | None,
    profile: str,
    groups: Sequence[str],
    kubeconfig: str | None,
    context: str | None,
    namespace: str | None,
    dry_run: bool = False,
    all_or_nothing: bool = False,
    ping_interval: float = 30.0,
    protocol: str = "auto",
    hand_over: Callable[[list[ForwardSpec]], int | None] | None = None,
) -> int:
    """`hand_over` may take the chosen forwards elsewhere (a running daemon): its exit code,
    or None to run them here."""
    try:
        chosen = select(
            profiles_file,
            profile,
            groups,
            kubeconfig=kubeconfig,
            context=context,
            namespace=namespace,
            protocol=protocol,
        )
    except UpUsageError as exc:
        for line in exc.lines:
            print(f"error: {escape_controls(line)}", file=sys.stderr)
        return USAGE
    if not chosen.specs:
        print(
            f"error: profile {quote(profile)} has no forwards"
            + (" in these groups" if groups else ""),
            file=sys.stderr,
        )
        return USAGE
    if dry_run:
        return run(_dry_run(chosen.specs, kubeconfig=kubeconfig, ping_interval=ping_interval))
    if hand_over is not None:
        handed = hand_over(chosen.specs)
        if handed is not None:
            return handed
    return run(
        _up(
            chosen.specs,
            kubeconfig=kubeconfig,
            ping_interval=ping_interval,
            all_or_nothing=all_or_nothing,
        )
    )


# -- --dry-run --------------------------------------------------------------------------------


def _listen_text(spec: ForwardSpec) -> str:
    port = spec.local_port
    hosts = [
        format_host_port(a.host, port) if port else a.host for a in parse_addresses(spec.addresses)
    ]
    where = " and ".join(hosts)
    return f"would listen on {where}" + ("" if port else " (a free port)")


def dry_run_line(p: Preview) -> str:
    spec = p.spec
    name = spec.name or spec.target
    if p.error:
        return escape_controls(f"{name}: error: {p.error}")
    port = str(p.container_port) + (f" ({p.port_name})" if p.port_name else "")
    remote = spec.remote_port
    return escape_controls(
        f"{name}: {spec.target} port {remote} (context {p.context}, namespace {p.namespace})"
        f" -> pod {p.pod} port {port}; {_listen_text(spec)}"
    )


async def _dry_run(
    specs: list[ForwardSpec], *, kubeconfig: str | None, ping_interval: float
) -> int:
    clients = ClientPool(kubeconfig, ping_interval=ping_interval)
    try:
        previews = await asyncio.gather(*(preview(clients, s) for s in specs))
    finally:
        await clients.close()
    code = 0
    for p in previews:
        print(dry_run_line(p), file=sys.stderr if p.error else sys.stdout)
        if p.error:
            code = FAILED
    return code


# -- running ----------------------------------------------------------------------------------


class _Lines:
    """Per forward, a `_Printer` whose lines carry the forward's name."""

    def __init__(self, out: LineWriter, err: LineWriter) -> None:
        self.out, self.err = out, err
        self.printers: dict[str, _Printer] = {}
        self.names: dict[str, str] = {}

    def add(self, fid: str, name: str) -> None:
        self.names[fid] = name
        self.printers[fid] = _Printer(
            self._prefixed(self.out, name), self._prefixed(self.err, name)
        )

    @staticmethod
    def _prefixed(writer: LineWriter, name: str) -> Callable[[str], None]:
        shown = escape_controls(name)
        return lambda line: writer.line(f"{shown}: {line}")

    def failed(self, fid: str, reason: str) -> None:
        self.err.line(escape_controls(f"{self.names[fid]}: error: {reason}"))


async def _print_events(events: Subscription, lines: _Lines) -> None:
    async for event in events:
        if isinstance(event, LogLine) and event.forward_id in lines.printers:
            lines.printers[event.forward_id].entry(event.entry)


async def _up(
    specs: list[ForwardSpec], *, kubeconfig: str | None, ping_interval: float, all_or_nothing: bool
) -> int:
    stop = asyncio.Event()
    handled = stop_on_signals(stop)  # SIGINT, SIGTERM
    manager = Manager(kubeconfig=kubeconfig, ping_interval=ping_interval)
    events = manager.subscribe(maxsize=10_000)
    changes = manager.subscribe()
    out, err = LineWriter(sys.stdout, "stdout"), LineWriter(sys.stderr, "stderr")
    lines = _Lines(out, err)
    printer = asyncio.create_task(_print_events(events, lines))
    helpers: list[asyncio.Task[object]] = []
    try:
        wanted: dict[str, bool] = {}  # id -> reconnect, as the profile says
        for spec in specs:
            fid = await manager.add(replace(spec, reconnect=False), start=False)
            lines.add(fid, spec.name or spec.target)
            wanted[fid] = spec.reconnect
        starts = [asyncio.create_task(manager.start(fid)) for fid in wanted]
        helpers.extend(starts)
        stopper = asyncio.create_task(stop.wait())
        helpers.append(stopper)
        pending = set(starts)
        while pending and not stop.is_set():
            done, _ = await asyncio.wait({*pending, stopper}, return_when=asyncio.FIRST_COMPLETED)
            pending -= done
        if stop.is_set():
            return 0
        code = 0
        running: list[str] = []
        for fid in wanted:
            snap = manager.get(fid)
            if snap.state is ForwardState.ACTIVE:
                running.append(fid)
                continue
            lines.failed(fid, snap.reason or f"the forward to {snap.spec.target} did not start")
            await manager.remove(fid)
            code = FAILED
        if not running or (code and all_or_nothing):
            if running:
                err.line("error: not all forwards started (--all-or-nothing): stopped them all")
            return FAILED
        for fid in running:
            lines.printers[fid].started()
            if wanted[fid]:
                await manager.set_reconnect(fid, True)
            _forwarding(manager.get(fid), lines)
        return await _watch(manager, changes, running, lines, stop, all_or_nothing, code)
    finally:
        for task in helpers:
            task.cancel()
        await asyncio.gather(*helpers, return_exceptions=True)
        await manager.shutdown()
        changes.close()
        events.close()
        await asyncio.wait({printer}, timeout=1.0)
        printer.cancel()
        await asyncio.gather(printer, return_exceptions=True)
        out.close()
        err.close()
        release_signals(handled)


def _forwarding(snap: ForwardSnapshot, lines: _Lines) -> None:
    printer = lines.printers[snap.id]
    for host, port in snap.bound:
        printer.out(f"Forwarding from {format_host_port(host, port)} -> {snap.remote_port}")


async def _watch(
    manager: Manager,
    changes: Subscription,
    running: list[str],
    lines: _Lines,
    stop: asyncio.Event,
    all_or_nothing: bool,
    code: int,
) -> int:
    """Until Ctrl-C: a forward that fails for good is one line; with --all-or-nothing (or
    when none is left) that ends the command with exit 1."""
    alive = set(running)
    stopper = asyncio.create_task(stop.wait())
    getter: asyncio.Task[object] | None = None
    iterator = changes.__aiter__()
    try:
        while alive:
            for fid in list(alive):
                snap = manager.get(fid)
                if _failed_for_good(snap):
                    lines.failed(fid, snap.reason or f"the forward to {snap.spec.target} failed")
                    alive.discard(fid)
                    code = FAILED
                    if all_or_nothing:
                        return FAILED
            if not alive:
                return FAILED
            getter = asyncio.ensure_future(iterator.__anext__())
            done, _ = await asyncio.wait({getter, stopper}, return_when=asyncio.FIRST_COMPLETED)
            if stopper in done:
                return code
            try:
                event = getter.result()
            except StopAsyncIteration:
                return code
            getter = None
            if not isinstance(event, ForwardChanged | Lagged):
                continue
        return FAILED
    finally:
        for task in (stopper, getter):
            if task is not None:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
