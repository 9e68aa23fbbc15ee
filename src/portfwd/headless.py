"""`portfwd forward`: kubectl port-forward's command line and output, on portfwd's engine.

Order matters for the user: every argument is parsed and every local port checked *before*
anything talks to the cluster, so a typo or a port in use costs one line and no half-started
state. Then each port mapping becomes one Forward in a Manager; if any of them cannot start,
all are stopped and its reason is the one error line. Output follows kubectl:

    Forwarding from 127.0.0.1:8080 -> 80
    Forwarding from [::1]:8080 -> 80
    Handling connection for 8080

Connection failures (the kubelet's text) and listener warnings go to stderr. Ctrl-C or SIGTERM
stops everything and exits 0.

The first start fails fast, as kubectl does: the forwards are started without reconnect, and
only once every one is active is reconnect switched on (unless --no-reconnect). From then on
the engine rides out failures: its `reconnecting (...)` warnings and its `active again` /
`switched to pod` lines go to stderr. A forward that fails for good (with --no-reconnect: any
failure, e.g. its pod was deleted; otherwise an error that no retry can fix) ends the command
with its reason as the one `error:` line and exit code 1.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable

from portfwd.console import LineWriter
from portfwd.engine.events import ForwardChanged, Lagged, LogLine
from portfwd.engine.manager import Manager, Subscription
from portfwd.engine.model import (
    ForwardSnapshot,
    ForwardSpec,
    ForwardState,
    LogEntry,
    LogKind,
    LogLevel,
)
from portfwd.errors import InputError, PortfwdError
from portfwd.eventloop import release_signals, run, stop_on_signals
from portfwd.kube.resolve import local_port_for, resolve
from portfwd.kube.targets import PortMapping, Target, parse_port_mapping, parse_target
from portfwd.safetext import escape_controls
from portfwd.tunnel.addresses import BindAddress, format_host_port, parse_addresses
from portfwd.tunnel.listener import check_bindable


def run_forward(
    *,
    kubeconfig: str | None,
    context: str | None,
    namespace: str | None,
    addresses: str,
    target: str,
    ports: list[str],
    reconnect: bool = True,
    ping_interval: float = 30.0,
    protocol: str = "auto",
    spread: bool = False,
) -> int:
    parsed_target = parse_target(target)
    if not ports:
        raise InputError("no port given: expected [LOCAL:]REMOTE, e.g. 8080:80")
    mappings = [parse_port_mapping(p) for p in ports]
    bind_addresses = parse_addresses(addresses)
    _check_local_ports(mappings, bind_addresses)
    return run(
        _forward(
            kubeconfig=kubeconfig,
            context=context,
            namespace=namespace,
            addresses=bind_addresses,
            address_text=tuple(a.strip() for a in addresses.split(",") if a.strip()),
            target=parsed_target,
            target_text=target.strip(),
            mappings=mappings,
            reconnect=reconnect,
            ping_interval=ping_interval,
            protocol=protocol,
            spread=spread,
        )
    )


def _check_local_ports(mappings: list[PortMapping], addresses: list[BindAddress]) -> None:
    seen: set[int] = set()
    for m in mappings:
        if m.local_port and m.local_port in seen:
            raise InputError(f"local port {m.local_port} is given twice; use each once")
        seen.add(m.local_port)
    for m in mappings:
        if m.local_port:
            check_bindable(addresses, m.local_port, m.remote)


async def _forward(
    *,
    kubeconfig: str | None,
    context: str | None,
    namespace: str | None,
    addresses: list[BindAddress],
    address_text: tuple[str, ...],
    target: Target,
    target_text: str,
    mappings: list[PortMapping],
    reconnect: bool,
    ping_interval: float,
    protocol: str,
    spread: bool = False,
) -> int:
    stop = asyncio.Event()
    handled = stop_on_signals(stop)  # SIGINT, SIGTERM
    manager = Manager(kubeconfig=kubeconfig, ping_interval=ping_interval)
    events = manager.subscribe(maxsize=10_000)
    changes = manager.subscribe()
    out, err = LineWriter(sys.stdout, "stdout"), LineWriter(sys.stderr, "stderr")
    lines = _Printer(out.line, err.line)
    printer = asyncio.create_task(_print_events(events, lines))
    helpers: list[asyncio.Task[object]] = []  # the starts we wait for, and the Ctrl-C watcher
    try:
        specs = [
            ForwardSpec(
                target=target_text,
                remote_port=m.remote,
                local_port=await _local_port(manager, context, namespace, target, m, addresses),
                namespace=namespace,
                context=context,
                kubeconfig=kubeconfig,
                addresses=address_text,
                reconnect=False,  # the first start fails fast; reconnect is switched on below
                protocol=protocol,
                spread=spread,
            )
            for m in mappings
        ]
        ids = [await manager.add(spec, start=False) for spec in specs]
        helpers.extend(asyncio.create_task(manager.start(fid)) for fid in ids)
        stopper = asyncio.create_task(stop.wait())
        helpers.append(stopper)
        # Ctrl-C counts while *any* forward is still starting (a slow API server).
        starting = set(helpers[:-1])
        while starting and not stop.is_set():
            done, _ = await asyncio.wait({*starting, stopper}, return_when=asyncio.FIRST_COMPLETED)
            starting -= done
        if stop.is_set():
            return 0
        snapshots = [manager.get(fid) for fid in ids]
        failed = [s for s in snapshots if s.state is not ForwardState.ACTIVE]
        if failed:
            raise PortfwdError(failed[0].reason or f"the forward to {target_text} did not start")
        lines.started()
        if reconnect:
            for fid in ids:
                await manager.set_reconnect(fid, True)
        for snap in snapshots:
            for host, port in snap.bound:
                out.line(f"Forwarding from {format_host_port(host, port)} -> {snap.remote_port}")
        lost = asyncio.create_task(_lost(changes, manager, ids))
        helpers.append(lost)
        await asyncio.wait({stopper, lost}, return_when=asyncio.FIRST_COMPLETED)
        reason = None if stop.is_set() else lost.result()
        if reason is not None:
            raise PortfwdError(reason)
        await stop.wait()
        return 0
    finally:
        for task in helpers:
            task.cancel()
        await asyncio.gather(*helpers, return_exceptions=True)
        await manager.shutdown()
        changes.close()
        events.close()  # the printer ends after what is queued; it gets a second for that
        await asyncio.wait({printer}, timeout=1.0)
        printer.cancel()
        await asyncio.gather(printer, return_exceptions=True)  # our own cancellation propagates
        out.close()
        err.close()
        release_signals(handled)


async def _local_port(
    manager: Manager,
    context: str | None,
    namespace: str | None,
    target: Target,
    mapping: PortMapping,
    addresses: list[BindAddress],
) -> int:
    """kubectl's local port for a bare port *name* is the number it resolves to."""
    if not mapping.local_from_remote:
        return mapping.local_port
    client = await manager.clients.get(context)
    resolution = await resolve(client, namespace or client.namespace, target, mapping.remote)
    port = local_port_for(mapping, resolution)
    check_bindable(addresses, port, mapping.remote)
    return port


def _failed_for_good(snap: ForwardSnapshot) -> bool:
    """In ERROR with nothing left to wait for: reconnect is off, or the listener is gone (a
    permanent failure). A forward in ERROR that still holds its port waits for its pod."""
    return snap.state is ForwardState.ERROR and not (snap.spec.reconnect and snap.bound)


async def _lost(changes: Subscription, manager: Manager, ids: list[str]) -> str | None:
    """Wait until one of the running forwards fails for good; returns its reason (None: the
    event stream ended, i.e. the command is stopping)."""

    def check(snap: ForwardSnapshot) -> str | None:
        if snap.id in ids and _failed_for_good(snap):
            return snap.reason or f"the forward to {snap.spec.target} failed"
        return None

    for fid in ids:  # one that failed before this task ran
        reason = check(manager.get(fid))
        if reason is not None:
            return reason
    async for event in changes:
        found: list[ForwardSnapshot] = []
        if isinstance(event, ForwardChanged):
            found = [event.snapshot]
        elif isinstance(event, Lagged):
            found = [manager.get(fid) for fid in ids]
        for snap in found:
            reason = check(snap)
            if reason is not None:
                return reason
    return None


# Lines that restate why a forward is not active yet: while the first start runs they are
# held back, because a start that fails prints that reason once, as its `error:` line.
_RESTATING = frozenset({LogKind.WAITING, LogKind.RECONNECTING, LogKind.FAILED, LogKind.GONE})


class _Printer:
    """kubectl's lines on stdout; warnings, recoveries and connection errors on stderr.

    `out` and `err` take a line each and never block (see console.py). Log lines quote the
    kubelet's and the API's words: control characters are shown escaped (also done where
    the engine makes the entry: LogEntry). What is printed is decided by the line's kind and
    level, never its words.
    """

    def __init__(self, out: Callable[[str], None], err: Callable[[str], None]) -> None:
        self.out = out
        self.err = err
        self.starting = True  # until every forward is active (see _forward)
        self._held: list[str] = []

    def started(self) -> None:
        """The first start worked: what was held back is news after all."""
        self.starting = False
        for line in self._held:
            self.err(line)
        self._held.clear()

    def entry(self, entry: LogEntry) -> None:
        kind = entry.kind
        if kind is LogKind.CONNECTION:
            self.out(escape_controls(entry.message))
        elif kind is LogKind.RECOVERED:
            self.err(escape_controls(entry.message))
        elif kind is LogKind.FAILED:
            return  # the reason, printed once by the command as its error line
        elif entry.level >= LogLevel.WARNING:
            line = escape_controls(f"warning: {entry.message}")
            if self.starting and kind in _RESTATING:
                self._held.append(line)
            else:
                self.err(line)


async def _print_events(events: Subscription, printer: _Printer) -> None:
    async for event in events:
        if isinstance(event, LogLine):
            printer.entry(event.entry)
