"""Where a forward would go, without starting it: `portfwd up --dry-run`.

The same resolution a start does (the spec's client, its namespace, kubectl's rules for the
target and the port: `portfwd.kube.resolve`), and nothing else: no listener is bound, no
tunnel opened, no watch started.
"""

from __future__ import annotations

from dataclasses import dataclass

from portfwd.engine.clients import ClientPool
from portfwd.engine.health import describe
from portfwd.engine.model import ForwardSpec
from portfwd.errors import PortfwdError
from portfwd.kube.resolve import resolve


@dataclass(frozen=True)
class Preview:
    """What a start of the spec would use now; `error` set when it would fail."""

    spec: ForwardSpec
    context: str = ""
    namespace: str = ""
    pod: str = ""
    container_port: int = 0
    port_name: str = ""
    decisions: tuple[str, ...] = ()
    error: str = ""


async def preview(clients: ClientPool, spec: ForwardSpec) -> Preview:
    """Resolve `spec` to a pod and container port (never raises for the cluster's answers:
    they are the `error`)."""
    try:
        client = await clients.get(spec.context, spec.kubeconfig)
    except PortfwdError as exc:
        return Preview(spec, context=spec.context or "", error=describe(exc))
    namespace = spec.namespace or client.namespace
    try:
        resolution = await resolve(client, namespace, spec.parsed_target, spec.remote_port)
    except (PortfwdError, OSError) as exc:
        return Preview(spec, context=client.context, namespace=namespace, error=describe(exc))
    return Preview(
        spec,
        context=client.context,
        namespace=namespace,
        pod=resolution.pod.name,
        container_port=resolution.container_port,
        port_name=resolution.port_name,
        decisions=resolution.decisions,
    )
