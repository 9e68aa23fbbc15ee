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
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
from typing import TextIO

from portfwd.engine.clients import ClientPool
from portfwd.engine.events import LogLine
from portfwd.engine.forward import CONNECTION_LOG_PREFIX
from portfwd.engine.manager import Manager, Subscription
from portfwd.engine.model import ForwardSpec, ForwardState, LogLevel
from portfwd.errors import InputError, PortfwdError
from portfwd.kube.resolve import local_port_for, resolve
from portfwd.kube.targets import PortMapping, Target, parse_port_mapping, parse_target
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
) -> int:
    parsed_target = parse_target(target)
    if not ports:
        raise InputError("no port given: expected [LOCAL:]REMOTE, e.g. 8080:80")
    mappings = [parse_port_mapping(p) for p in ports]
    bind_addresses = parse_addresses(addresses)
    _check_local_ports(mappings, bind_addresses)
    return asyncio.run(
        _forward(
            kubeconfig=kubeconfig,
            context=context,
            namespace=namespace,
            addresses=bind_addresses,
            address_text=tuple(a.strip() for a in addresses.split(",") if a.strip()),
            target=parsed_target,
            target_text=target.strip(),
            mappings=mappings,
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
            check_bindable(addresses, m.local_port)


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
) -> int:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    handled: list[signal.Signals] = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(ValueError, RuntimeError, NotImplementedError):
            loop.add_signal_handler(sig, stop.set)  # main thread only
            handled.append(sig)
    manager = Manager(clients=ClientPool(kubeconfig))
    events = manager.subscribe(maxsize=10_000)
    printer = asyncio.create_task(_print_events(events, sys.stdout, sys.stderr))
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
        for snap in snapshots:
            for host, port in snap.bound:
                print(f"Forwarding from {format_host_port(host, port)} -> {snap.remote_port}")
        sys.stdout.flush()
        await stop.wait()
        return 0
    finally:
        for task in helpers:
            task.cancel()
        await asyncio.gather(*helpers, return_exceptions=True)
        await manager.shutdown()
        events.close()  # the printer ends after what is queued; it gets a second for that
        await asyncio.wait({printer}, timeout=1.0)
        printer.cancel()
        await asyncio.gather(printer, return_exceptions=True)  # our own cancellation propagates
        for sig in handled:
            loop.remove_signal_handler(sig)


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
    check_bindable(addresses, port)
    return port


async def _print_events(events: Subscription, out: TextIO, err: TextIO) -> None:
    """kubectl's lines on stdout; warnings and connection errors on stderr."""
    async for event in events:
        if not isinstance(event, LogLine):
            continue
        entry = event.entry
        if entry.level == LogLevel.WARNING:  # ERROR lines: the reason, printed once by the CLI
            print(f"warning: {entry.message}", file=err, flush=True)
        elif entry.message.startswith(CONNECTION_LOG_PREFIX):
            print(entry.message, file=out, flush=True)
