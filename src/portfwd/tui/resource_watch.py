"""The resources view's data: one namespace's services, pods, deployments and statefulsets,
kept current by watches (list, then watch; `KubeClient.watch` resumes and relists).

One watch per resource type (plus EndpointSlices, for the services' ready counts). A watch
that fails is retried with a backoff and its error is part of the view, so the screen says
"pods: cannot reach the API server, retrying in 4 s" instead of freezing; a 403 is not
retried (the view says which list is forbidden). No Textual here: the screen consumes
`views()` in a worker.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncGenerator, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from portfwd.errors import PortfwdError
from portfwd.kube.errors import Forbidden, NotFound
from portfwd.kube.objects import ContainerPort, EndpointSlice, Pod, Service, Workload
from portfwd.kube.watch import SYNCED
from portfwd.tui.catalog import PortChoice, endpoint_counts

log = logging.getLogger(__name__)

KIND_ORDER = ("service", "pod", "deployment", "statefulset")
_RESOURCES: dict[str, tuple[str, Callable[[dict[str, Any]], Any]]] = {
    "services": ("service", Service.from_dict),
    "endpointslices": ("service", EndpointSlice.from_dict),
    "pods": ("pod", Pod.from_dict),
    "deployments": ("deployment", lambda d: Workload.from_dict("deployment", d)),
    "statefulsets": ("statefulset", lambda d: Workload.from_dict("statefulset", d)),
}
RETRY_FIRST = 1.0
RETRY_MAX = 30.0


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
    """What the resources view consumes (`ResourceWatch`, or a test's fixed data)."""

    def views(self) -> AsyncGenerator[ResourceView, None]: ...

    def retry_now(self) -> None: ...


class ResourceWatch:
    """Watches one namespace; `views()` yields a new `ResourceView` after each change."""

    def __init__(self, client: Any, namespace: str) -> None:
        self.client = client  # a KubeClient
        self.namespace = namespace
        self._objects: dict[str, dict[str, Any]] = {r: {} for r in _RESOURCES}
        self._loading: set[str] = set(_RESOURCES)
        self._errors: dict[str, str] = {}
        self._retry_at: dict[str, float] = {}
        self._changed = asyncio.Event()
        self._kicks: dict[str, asyncio.Event] = {r: asyncio.Event() for r in _RESOURCES}

    def retry_now(self) -> None:
        """Watches waiting to retry try again at once (ctrl+r)."""
        for kick in self._kicks.values():
            kick.set()

    async def views(self) -> AsyncGenerator[ResourceView, None]:
        tasks = [
            asyncio.create_task(self._follow(resource), name=f"resources {resource}")
            for resource in _RESOURCES
        ]
        try:
            yield self.view()
            while True:
                await self._changed.wait()
                self._changed.clear()
                yield self.view()
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    def view(self) -> ResourceView:
        rows: list[ResourceRow] = []
        counts = endpoint_counts(list(self._objects["endpointslices"].values()))
        rows += [service_row(s, counts) for s in self._objects["services"].values()]
        rows += [pod_row(p) for p in self._objects["pods"].values()]
        rows += [workload_row(w) for w in self._objects["deployments"].values()]
        rows += [workload_row(w) for w in self._objects["statefulsets"].values()]
        rows.sort(key=lambda r: (KIND_ORDER.index(r.kind), r.name))
        kinds = {_RESOURCES[r][0] for r in self._loading}
        errors: dict[str, str] = {}
        retry_at: dict[str, float] = {}
        for resource, message in self._errors.items():
            kind = _RESOURCES[resource][0]
            errors.setdefault(kind, f"{resource}: {message}")
            if resource in self._retry_at:
                retry_at[kind] = self._retry_at[resource]
        return ResourceView(tuple(rows), frozenset(kinds), errors, retry_at)

    async def _follow(self, resource: str) -> None:
        delay = RETRY_FIRST
        while True:
            try:
                await self._watch_once(resource)
                return  # the client was closed
            except (Forbidden, NotFound) as exc:  # a 403 stays a 403: say so, no retries
                self._errors[resource] = str(exc)
                self._loading.discard(resource)
                self._changed.set()
                return
            except PortfwdError as exc:
                self._errors[resource] = str(exc)
                self._retry_at[resource] = time.time() + delay
                self._changed.set()
                kick = self._kicks[resource]
                kick.clear()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(delay):
                        await kick.wait()
                self._retry_at.pop(resource, None)
                delay = min(delay * 2, RETRY_MAX)
            else:
                delay = RETRY_FIRST

    async def _watch_once(self, resource: str) -> None:
        parse = _RESOURCES[resource][1]
        fresh: dict[str, Any] | None = {}  # the first list, until SYNCED
        events = self.client.watch(resource, self.namespace, retries=1)
        async with contextlib.aclosing(events) as stream:
            async for event in stream:
                if event.type == SYNCED:
                    if fresh is not None:
                        self._objects[resource], fresh = fresh, None
                    self._loading.discard(resource)
                    self._errors.pop(resource, None)
                    self._changed.set()
                    continue
                if event.type not in ("ADDED", "MODIFIED", "DELETED"):
                    continue
                meta = event.object.get("metadata")
                name = str(meta.get("name") or "") if isinstance(meta, dict) else ""
                cache = fresh if fresh is not None else self._objects[resource]
                if event.type == "DELETED":
                    cache.pop(name, None)
                else:
                    try:
                        cache[name] = parse(event.object)
                    except (KeyError, TypeError, ValueError) as exc:
                        log.warning("ignoring a malformed %s %r: %s", resource, name, exc)
                        continue
                if fresh is None:
                    self._changed.set()
