"""`portfwd ns` for a front end that holds only rows (the dashboard's browse view, attached
to a daemon or not): the forwards it would make for the Services shown, at one moment.

The same addresses and ports as `portfwd ns` (`reach.loopback`: the same table file, so a
Service keeps its address whichever started it), each a `svc/NAME` forward with `spread`.
Unlike `portfwd ns` it is a snapshot: Services created later are not added, and a headless
Service gets its Service address only (spread over its pods), not one per pod.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from portfwd.engine.browse import ResourceRow
from portfwd.engine.model import ForwardSpec
from portfwd.reach.loopback import AddressTable, local_ports


def forwardable(rows: Iterable[ResourceRow]) -> list[ResourceRow]:
    """The Services with pods behind them and a TCP port (what `portfwd ns` forwards)."""
    return [
        r
        for r in rows
        if r.kind == "service"
        and r.status != "ExternalName"
        and r.ready != "no selector"
        and any(p.protocol.upper() == "TCP" for p in r.ports)
    ]


def namespace_specs(
    services: Sequence[ResourceRow],
    *,
    context: str,
    namespace: str,
    table: AddressTable,
    port_start: int,
    many_addresses: bool,
    spec_context: str | None = None,
    kubeconfig: str | None = None,
) -> list[ForwardSpec]:
    """One spread forward per TCP port of each Service, on the Service's own address and
    native port (moved as `portfwd ns` moves ports it cannot bind). `context`: the name the
    address is keyed by; `spec_context`: what the forwards say (None: the current one)."""
    specs: list[ForwardSpec] = []
    for row in forwardable(services):
        ports = sorted({p.port for p in row.ports if p.protocol.upper() == "TCP"})
        if many_addresses:
            address = table.address(context, namespace, row.name)
            mapped = local_ports(ports, port_start)
        else:
            address, mapped = "127.0.0.1", {p: 0 for p in ports}
        specs += [
            ForwardSpec(
                target=f"svc/{row.name}",
                remote_port=port,
                local_port=mapped[port],
                namespace=namespace,
                context=spec_context,
                kubeconfig=kubeconfig,
                addresses=(address,),
                spread=True,
            )
            for port in ports
        ]
    return specs
