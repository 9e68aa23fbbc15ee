"""What a front end lists: contexts, namespaces, resources, ports, a namespace kept live.

The TUI's picker, quick add and browse view, shell completion (and any later front end) are
typed against the `Catalog` Protocol; `KubeCatalog` answers from the kubeconfig and the
cluster through any source of clients (the engine's shared `ClientPool`, or completion's
one short-lived client), a test can answer from fixed data. Kinds are named as
`portfwd.kube.kinds` names them. Listing is a read-only query: no forwarding logic lives
here, and nothing here knows Textual.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from portfwd.engine.browse import LiveResources, ResourceWatch
from portfwd.engine.ports import UDP_REASON as UDP_REASON
from portfwd.engine.ports import PortChoice as PortChoice
from portfwd.engine.ports import endpoint_counts as endpoint_counts
from portfwd.errors import PortfwdError
from portfwd.kube import kinds
from portfwd.kube.errors import Forbidden, NotFound
from portfwd.kube.objects import ContainerPort, EndpointSlice, Pod, Service, Workload

if TYPE_CHECKING:
    from portfwd.kube.client import KubeClient

UDP_ONLY_REASON = "UDP ports only: Kubernetes port-forward is TCP only"


class ListForbidden(PortfwdError):
    """The user may not list this (e.g. namespaces at cluster scope): fall back to typing."""


@dataclass(frozen=True)
class ContextChoice:
    name: str
    cluster: str = ""
    namespace: str = ""  # the context's default namespace ("" = default)
    current: bool = False


@dataclass(frozen=True)
class ResourceChoice:
    name: str
    status: str = ""  # e.g. Running, ClusterIP, "2/2 ready"
    ready: str = ""  # ready counts: "1/1", "2/3 endpoints"
    healthy: bool = True
    detail: str = ""
    disabled_reason: str = ""  # why it cannot be forwarded (a Service with UDP ports only)


class ClientSource(Protocol):
    """Where a catalog gets the client of a context (`engine.clients.ClientPool`)."""

    async def get(self, context: str | None = None, kubeconfig: str | None = None) -> KubeClient:
        """The client of `context` (None: the current one) of `kubeconfig` (None: the
        source's own)."""
        ...


class Catalog(Protocol):
    """`kind` is a target kind's name (`service`, `replicaset`: `portfwd.kube.kinds`)."""

    async def contexts(self) -> list[ContextChoice]: ...

    async def namespaces(self, context: str) -> list[str]: ...

    async def resources(self, context: str, namespace: str, kind: str) -> list[ResourceChoice]: ...

    async def ports(
        self, context: str, namespace: str, kind: str, name: str
    ) -> list[PortChoice]: ...

    async def node_of(
        self, context: str, namespace: str, pod: str, kubeconfig: str | None = None
    ) -> str:
        """The node the pod runs on ("" when not scheduled)."""
        ...

    async def live_resources(self, context: str, namespace: str) -> LiveResources:
        """The namespace's resources of the listed kinds, kept current."""
        ...


def _pod_choice(pod: Pod) -> ResourceChoice:
    ready, total = pod.ready_count
    return ResourceChoice(
        name=pod.name,
        status=pod.display_status(),
        ready=f"{ready}/{total}",
        healthy=pod.ready,
        detail="" if pod.ready else pod.not_ready_reason(),
    )


def _workload_choice(w: Workload) -> ResourceChoice:
    return ResourceChoice(
        name=w.name,
        status="Available" if w.ready_replicas >= w.replicas and w.replicas else "Progressing",
        ready=f"{w.ready_replicas}/{w.replicas}",
        healthy=w.ready_replicas > 0,
    )


def _service_choice(svc: Service, counts: dict[str, tuple[int, int]] | None) -> ResourceChoice:
    """`counts`: ready and all endpoints per service; None when they may not be read (the
    service is listed all the same, without them)."""
    ports = ",".join(f"{p.port}/{p.protocol}" for p in svc.ports)
    ready, total = (counts or {}).get(svc.name, (0, 0))
    if svc.selector is None:
        ready_text = "no selector"
    else:
        ready_text = f"{ready}/{total} ready" if counts is not None else ""
    udp_only = bool(svc.ports) and all(p.protocol.upper() != "TCP" for p in svc.ports)
    return ResourceChoice(
        name=svc.name,
        status=svc.type,
        ready=ready_text,
        healthy=ready > 0 or counts is None,
        detail=ports,
        disabled_reason=UDP_ONLY_REASON if udp_only else "",
    )


async def _slices(client: KubeClient, namespace: str) -> list[EndpointSlice] | None:
    """The namespace's EndpointSlices, or None without the right to list them (or on a
    server without them)."""
    try:
        return await client.list_endpointslices(namespace)
    except (Forbidden, NotFound):
        return None


def _container_port_choices(ports: Sequence[ContainerPort]) -> list[PortChoice]:
    return [PortChoice(port=p.container_port, name=p.name, protocol=p.protocol) for p in ports]


def _target_kind(kind: str) -> kinds.Kind:
    found = next((k for k in kinds.TARGETS if k.name == kind), None)
    if found is None:
        names = ", ".join(k.name for k in kinds.TARGETS)
        raise PortfwdError(f"unknown kind {kind!r}: use one of {names}")
    return found


class KubeCatalog:
    """Lists through a source of clients (the engine's pool: one connection per context)."""

    def __init__(
        self,
        clients: ClientSource,
        *,
        kubeconfig: str | None = None,
        list_contexts: Callable[..., tuple[list[Any], str | None]] | None = None,
    ) -> None:
        self._clients = clients
        self._kubeconfig = kubeconfig
        self._list_contexts = list_contexts

    async def _client(self, context: str, kubeconfig: str | None = None) -> KubeClient:
        return await self._clients.get(context or None, kubeconfig)

    async def contexts(self) -> list[ContextChoice]:
        lister = self._list_contexts
        if lister is None:
            from portfwd.kube.config import list_contexts

            lister = list_contexts
        infos, current = await asyncio.to_thread(lister, self._kubeconfig)
        return [
            ContextChoice(
                name=i.name,
                cluster=i.cluster,
                namespace=i.namespace or "",
                current=i.name == current,
            )
            for i in infos
        ]

    async def namespaces(self, context: str) -> list[str]:
        client = await self._client(context)
        try:
            items = await client.list_namespaces()
        except PortfwdError as exc:
            if getattr(exc, "status", None) == 403:
                raise ListForbidden(str(exc)) from exc
            raise
        return sorted(ns.name for ns in items)

    async def resources(self, context: str, namespace: str, kind: str) -> list[ResourceChoice]:
        found = _target_kind(kind)
        client = await self._client(context)
        if found is kinds.POD:
            pods = await client.list_pods(namespace)
            return [_pod_choice(p) for p in sorted(pods, key=lambda p: p.name)]
        if found is kinds.SERVICE:
            services, slices = await asyncio.gather(
                client.list_services(namespace), _slices(client, namespace)
            )
            counts = endpoint_counts(slices) if slices is not None else None
            return [_service_choice(svc, counts) for svc in sorted(services, key=lambda s: s.name)]
        items = await client.list_workloads(found.name, namespace)
        return [_workload_choice(w) for w in sorted(items, key=lambda w: w.name)]

    async def ports(self, context: str, namespace: str, kind: str, name: str) -> list[PortChoice]:
        found = _target_kind(kind)
        client = await self._client(context)
        if found is kinds.SERVICE:
            svc = await client.get_service(namespace, name)
            out = []
            for p in svc.ports:
                detail = ""
                if p.target_port != p.port:
                    detail = f"→ targetPort {p.target_port}"
                out.append(PortChoice(port=p.port, name=p.name, protocol=p.protocol, detail=detail))
            return out
        if found is kinds.POD:
            pod = await client.get_pod(namespace, name)
            return _container_port_choices(pod.all_ports)
        w = await client.get_workload(found.name, namespace, name)
        return _container_port_choices(w.template_ports)

    async def node_of(
        self, context: str, namespace: str, pod: str, kubeconfig: str | None = None
    ) -> str:
        client = await self._client(context, kubeconfig)
        found: Pod = await client.get_pod(namespace, pod)
        return found.node_name

    async def live_resources(self, context: str, namespace: str) -> LiveResources:
        return ResourceWatch(await self._client(context), namespace)
