"""The port kftray dials for a service entry: the Service's targetPort, read from the cluster.

kftray sends a service entry's `remote_port` to the pod (it looks up the Service's pods and
dials that port on one), while portfwd and kubectl read svc/NAME's number as the Service's
port. So `export --format kftray-json` writes the targetPort (a number, or the port's name
when the Service names one) that the Service port portfwd forwards maps to, read now; where
it cannot be read (no cluster reachable, no such Service or port) the export says why in its
notes and writes the forward's own port.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass

from portfwd.engine.clients import ClientPool
from portfwd.engine.model import ForwardSpec
from portfwd.errors import PortfwdError

LOOKUP_TIMEOUT = 10.0  # seconds for all the lookups of one export


@dataclass(frozen=True)
class TargetPort:
    """A service forward's targetPort (`port`), or why it is unknown (`error`)."""

    port: int | str | None = None
    error: str = ""


def _target_of(spec: ForwardSpec, ports: Sequence[tuple[int, str, str, int | str]]) -> TargetPort:
    remote = spec.remote_port
    for number, name, protocol, target in ports:
        if protocol.upper() != "TCP":
            continue
        if (isinstance(remote, int) and number == remote) or (remote == name and name):
            return TargetPort(target or number)
    return TargetPort(error=f"the Service has no TCP port {remote}")


async def target_ports(
    specs: Sequence[ForwardSpec], *, kubeconfig: str | None = None
) -> dict[int, TargetPort]:
    """Each service forward's targetPort, by its index in `specs` (others are left out)."""
    pool = ClientPool(kubeconfig, ping_interval=0)

    async def one(spec: ForwardSpec) -> TargetPort:
        try:
            client = await pool.get(spec.context, spec.kubeconfig)
            service = await client.get_service(
                spec.namespace or client.namespace, spec.parsed_target.name
            )
        except (PortfwdError, OSError) as exc:
            return TargetPort(error=str(exc))
        ports = [(p.port, p.name, p.protocol, p.target_port) for p in service.ports]
        return _target_of(spec, ports)

    wanted = {i: s for i, s in enumerate(specs) if s.parsed_target.kind == "service"}
    try:
        async with asyncio.timeout(LOOKUP_TIMEOUT):
            found = await asyncio.gather(*(one(s) for s in wanted.values()))
    except TimeoutError:
        late = TargetPort(error=f"the cluster did not answer within {LOOKUP_TIMEOUT:g} s")
        return dict.fromkeys(wanted, late)
    finally:
        await pool.close()
    return dict(zip(wanted, found, strict=True))
