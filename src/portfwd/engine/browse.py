"""The browse view's data: one namespace's resources of the listed kinds (services, pods,
deployments, statefulsets: `portfwd.kube.kinds.LISTED`), kept current by watches.

One informer (`engine/informers.py`: list, then watch, retried on the one `Backoff`) per
listed kind, plus EndpointSlices for the services' ready counts. A watch that fails is
retried and its error is part of the view, so the screen says "pods: cannot reach the API
server, retrying in 4 s" instead of freezing; a 403 is not retried (the view says which list
is forbidden). No Textual here: the screen consumes `views()` in a worker.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from portfwd.engine.informers import Informer
from portfwd.engine.ports import PortChoice, endpoint_counts
from portfwd.kube import kinds
from portfwd.kube.objects import ContainerPort, Pod, Service, Workload

KIND_ORDER = tuple(k.name for k in kinds.LISTED)
# Watched for the view: the listed kinds, and EndpointSlices (the services' ready counts).
_WATCHED: tuple[tuple[kinds.Kind, kinds.Kind], ...] = (
    *((k, k) for k in kinds.LISTED),
    (kinds.ENDPOINTSLICE, kinds.SERVICE),  # (watched, the kind of the rows it informs)
)


@dataclass(frozen=True)
class ResourceRow:
    """One object as the resources view lists it (the API's text, not yet escaped)."""

    kind: str  # service | pod | deployment | statefulset
    name: str
    ready: str  # "2/2", "1/3 endpoints", "no selector"
    status: str  # Running, CrashLoopBackOff, ClusterIP, Available ...
    healthy: bool
    ports: tuple[PortChoice, ...] = ()
    created: float | None = None  # wall clock of its creationTimestamp
    detail: str = ""  # why not ready
    restarts: int = 0  # a pod's containers' restarts

    @property
    def key(self) -> str:
        return f"{self.kind}/{self.name}"


@dataclass(frozen=True)
class ResourceView:
    """The namespace at one moment: rows in kind, then name order; what is not known yet."""

    rows: tuple[ResourceRow, ...] = ()
    loading: frozenset[str] = frozenset()  # kinds whose first list has not arrived
    errors: Mapping[str, str] = field(default_factory=dict)  # kind -> why it is not live
    retry_at: Mapping[str, float] = field(default_factory=dict)  # kind -> next attempt


def _timestamp(text: str) -> float | None:
    if not text:
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def _container_ports(ports: tuple[ContainerPort, ...]) -> tuple[PortChoice, ...]:
    return tuple(PortChoice(p.container_port, p.name, p.protocol) for p in ports)


def pod_row(pod: Pod) -> ResourceRow:
    ready, total = pod.ready_count
    return ResourceRow(
        kind="pod",
        name=pod.name,
        ready=f"{ready}/{total}",
        status=pod.display_status(),
        healthy=pod.ready,
        ports=_container_ports(pod.all_ports),
        created=_timestamp(pod.meta.creation_timestamp),
        detail="" if pod.ready else pod.not_ready_reason(),
        restarts=pod.restarts,
    )


def workload_row(w: Workload) -> ResourceRow:
    return ResourceRow(
        kind=w.kind,
        name=w.name,
        ready=f"{w.ready_replicas}/{w.replicas}",
        status="Available" if w.replicas and w.ready_replicas >= w.replicas else "Progressing",
        healthy=w.ready_replicas > 0,
        ports=_container_ports(w.template_ports),
        created=_timestamp(w.meta.creation_timestamp),
    )


def service_row(svc: Service, counts: Mapping[str, tuple[int, int]]) -> ResourceRow:
    """`counts`: ready and all endpoints per service (`catalog.endpoint_counts`)."""
    ready, total = counts.get(svc.name, (0, 0))
    ready_text = "no selector" if svc.selector is None else f"{ready}/{total}"
    ports = tuple(
        PortChoice(
            p.port,
            p.name,
            p.protocol,
            f"→ targetPort {p.target_port}" if str(p.target_port) != str(p.port) else "",
        )
        for p in svc.ports
    )
    return ResourceRow(
        kind="service",
        name=svc.name,
        ready=ready_text,
        status="Headless" if svc.headless else svc.type,
        healthy=ready > 0,
        ports=ports,
        created=_timestamp(svc.meta.creation_timestamp),
        detail="" if ready or svc.selector is None else "no ready endpoint",
    )


class LiveResources(Protocol):
    """What the browse view consumes (`ResourceWatch`, or a test's fixed data)."""

    def views(self) -> AsyncGenerator[ResourceView, None]: ...

    def retry_now(self) -> None: ...


class ResourceWatch:
    """Watches one namespace; `views()` yields a new `ResourceView` after each change."""

    def __init__(self, client: Any, namespace: str) -> None:
        self.client = client  # a KubeClient
        self.namespace = namespace
        self._changed = asyncio.Event()
        self._informers: dict[str, Informer[Any]] = {}

    def retry_now(self) -> None:
        """Watches waiting to retry try again at once (ctrl+r)."""
        for informer in self._informers.values():
            if informer.error is not None and not informer.forbidden:
                informer.retry_now()

    async def views(self) -> AsyncGenerator[ResourceView, None]:
        self._informers = {
            watched.plural: Informer(self.client, watched.plural, self.namespace)
            for watched, _ in _WATCHED
        }
        for informer in self._informers.values():
            informer.listen(self._changed)
            informer.start()
        try:
            yield self.view()
            while True:
                await self._changed.wait()
                self._changed.clear()
                yield self.view()
        finally:
            informers, self._informers = list(self._informers.values()), {}
            await asyncio.gather(*(i.close() for i in informers), return_exceptions=True)

    def _objects(self, kind: kinds.Kind) -> list[Any]:
        informer = self._informers.get(kind.plural)
        return list(informer.objects.values()) if informer is not None else []

    def view(self) -> ResourceView:
        rows: list[ResourceRow] = []
        counts = endpoint_counts(self._objects(kinds.ENDPOINTSLICE))
        for kind in kinds.LISTED:
            for obj in self._objects(kind):
                if isinstance(obj, Service):
                    rows.append(service_row(obj, counts))
                elif isinstance(obj, Pod):
                    rows.append(pod_row(obj))
                elif isinstance(obj, Workload):
                    rows.append(workload_row(obj))
        rows.sort(key=lambda r: (KIND_ORDER.index(r.kind), r.name))
        loading: set[str] = set()
        errors: dict[str, str] = {}
        retry_at: dict[str, float] = {}
        for watched, shown in _WATCHED:
            informer = self._informers.get(watched.plural)
            if informer is None:
                loading.add(shown.name)
                continue
            if not informer.listed and not informer.forbidden:
                loading.add(shown.name)
            if informer.error is not None:
                errors.setdefault(shown.name, f"{watched.plural}: {informer.error}")
                if informer.next_retry_at is not None:
                    retry_at[shown.name] = informer.next_retry_at
        return ResourceView(tuple(rows), frozenset(loading), errors, retry_at)
