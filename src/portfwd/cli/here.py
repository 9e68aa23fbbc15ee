"""Forwards run in this process until Ctrl-C (`portfwd forward`, `portfwd up --here`): the
start policy of engine/launch.py on an in-process Manager, printed as kubectl would.

`forward` is all or nothing, like kubectl: a forward that cannot start, or later fails for
good, ends the command with its reason as the one `error:` line (raised as PortfwdError, exit
1). `up` names each forward in front of its lines; one that cannot start or fails for good is
one `NAME: error: REASON` line and the others keep running (exit 1 at the end), unless
`all_or_nothing`. Ctrl-C or SIGTERM stops everything.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING

from portfwd.cli.namespaces_here import namespaces_running
from portfwd.cli.printer import Lines, print_events
from portfwd.cli.run import ExitCode
from portfwd.engine.launch import launch, reason_of, watch
from portfwd.engine.manager import Manager
from portfwd.engine.model import ForwardSnapshot, ForwardSpec
from portfwd.errors import PortfwdError
from portfwd.eventloop import release_signals, stop_on_signals
from portfwd.store.profiles_model import ProfileNamespace

if TYPE_CHECKING:
    from portfwd.metrics.server import MetricsServer

Started = Callable[[list[ForwardSnapshot]], Awaitable[None]]
EVENTS_QUEUED = 10_000  # log lines the printer may fall behind by before it lags


async def run_here(
    specs: Sequence[ForwardSpec],
    *,
    kubeconfig: str | None,
    ping_interval: float,
    named: bool,
    all_or_nothing: bool,
    namespaces: Sequence[ProfileNamespace] = (),
    metrics: tuple[str, int] | None = None,
    on_started: Started | None = None,
) -> int:
    """Run `specs` until Ctrl-C; `named`: `up`'s lines (else `forward`'s). `namespaces`: a
    profile's whole namespaces, run beside the forwards as `portfwd ns` runs them. `metrics`:
    serve the Prometheus endpoint there (one warning line when it cannot bind; the forwards
    run regardless). `on_started`: awaited with the forwards that started (`up --ports-file`)."""
    stop = asyncio.Event()
    handled = stop_on_signals(stop)  # SIGINT, SIGTERM
    manager = Manager(kubeconfig=kubeconfig, ping_interval=ping_interval)
    events = manager.subscribe(maxsize=EVENTS_QUEUED)
    lines = Lines()
    if not named:
        lines.one_for_all()
    printer = asyncio.create_task(print_events(events, lines.route))

    spaces = namespaces_running(manager, namespaces, lines.out.line, lines.err.line)
    endpoint = await _serve_metrics(manager, metrics, lines) if metrics is not None else None
    try:
        async with spaces:
            return await _run(
                manager, specs, lines, stop, named, all_or_nothing, bool(namespaces), on_started
            )
    finally:
        if endpoint is not None:
            await endpoint.close()
        await manager.shutdown()
        events.close()  # the printer ends after what is queued; it gets a second for that
        await asyncio.wait({printer}, timeout=1.0)
        printer.cancel()
        await asyncio.gather(printer, return_exceptions=True)  # our own cancellation propagates
        lines.close()
        release_signals(handled)


async def _serve_metrics(
    manager: Manager, where: tuple[str, int], lines: Lines
) -> MetricsServer | None:
    from portfwd.metrics.server import MetricsServer

    server = MetricsServer(manager.snapshot, manager.open_connections, *where)
    try:
        await server.start()
    except PortfwdError as exc:
        lines.err.line(f"warning: {exc}")
        return None
    lines.err.line(f"metrics on {server.url}")
    return server


async def _run(
    manager: Manager,
    specs: Sequence[ForwardSpec],
    lines: Lines,
    stop: asyncio.Event,
    named: bool,
    all_or_nothing: bool,
    spaces: bool,
    on_started: Started | None = None,
) -> int:
    def name_lines(fid: str, spec: ForwardSpec) -> None:
        lines.add(fid, spec.name or spec.target)

    launched = await launch(
        manager,
        specs,
        stop=stop,
        all_or_nothing=all_or_nothing or not named,
        on_added=name_lines if named else None,
    )
    if launched.interrupted:
        return ExitCode.OK
    if not named:
        return await _forward(manager, launched.active, launched.failed, lines, stop)
    code = ExitCode.OK
    for snap in launched.failed:
        lines.failed(snap.id, reason_of(snap))
        code = ExitCode.FAILED
    if launched.aborted:
        lines.err.line("error: not all forwards started (--all-or-nothing): stopped them all")
    if not launched.active:
        if spaces and not launched.aborted:  # the namespaces keep running
            await stop.wait()
        return ExitCode.FAILED if specs else ExitCode.OK
    for snap in launched.active:
        printer_of = lines.printers[snap.id]
        printer_of.started()
        printer_of.forwarding(snap)
    if on_started is not None:
        await on_started(launched.active)
    ids = [snap.id for snap in launched.active]
    lost = await watch(
        manager,
        ids,
        stop,
        lambda snap: lines.failed(snap.id, reason_of(snap, "failed")),
        all_or_nothing=all_or_nothing,
    )
    if spaces and not stop.is_set() and not all_or_nothing:
        await stop.wait()  # every forward is gone; the namespaces keep running
    if lost and (all_or_nothing or len(lost) == len(ids)):
        return ExitCode.FAILED
    return ExitCode.FAILED if lost else code


async def _forward(
    manager: Manager,
    active: list[ForwardSnapshot],
    failed: list[ForwardSnapshot],
    lines: Lines,
    stop: asyncio.Event,
) -> int:
    """`forward`: every forward started, or the first failure is the command's error."""
    if failed:
        raise PortfwdError(reason_of(failed[0]))
    assert lines.shared is not None
    lines.shared.started()
    for snap in active:
        lines.shared.forwarding(snap)
    lost = await watch(
        manager, [s.id for s in active], stop, lambda snap: None, all_or_nothing=True
    )
    if lost:
        raise PortfwdError(reason_of(lost[0], "failed"))
    return ExitCode.OK
