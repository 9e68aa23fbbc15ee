"""Target + remote port -> one Ready pod and a container port, with kubectl's rules.

The API server only forwards to pods, so everything else is resolved here first:

- `pod/NAME`: that pod, which must be Running (kubectl checks the phase too). A numeric port
  is used as-is even when the pod spec does not declare it (kubectl allows that); a named
  port is looked up in the pod's container ports.
- `svc/NAME`: the remote port is a service port, by number or by name; it is translated to
  its targetPort (a number, or a *name* looked up in the chosen pod's container ports, as
  kubectl's `translateServicePortToTargetPort`). UDP-only ports are refused (kubectl's
  `checkUDPPortInService`). The pod is a **Ready endpoint** of the service's EndpointSlices
  (ready and not terminating), not merely a Running pod matching the selector.
- `deploy/NAME`, `sts/NAME`, `rs/NAME`: a Ready, Running pod matching the workload's selector.

Among several Ready pods the choice is deterministic: the oldest pod (earliest creation, then
name), the one Ready the longest, which is also kubectl's preference. Every step is written
into `Resolution.decisions`, short lines for the forward's log.

:func:`resolve` fetches what it needs and hands it to the pure ``choose_for_*`` functions (no
I/O), which an engine following a workload calls directly with the objects of its watch caches:
they filter a cache's pods by the selector and namespace themselves, and `prefer` (the pod in
use) keeps a forward on its pod while that pod still serves. Failures that may heal by
themselves (no Ready pod, a pod not Running yet) raise :class:`~portfwd.errors.NoReadyPod`;
every other :class:`~portfwd.errors.ResolveError` needs the user to change something.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol, TypeVar

from portfwd.errors import InputError, NoReadyPod, ResolveError
from portfwd.kube.errors import ApiError, ClusterUnreachable, Forbidden, NotFound
from portfwd.kube.kinds import WORKLOADS
from portfwd.kube.objects import (
    ContainerPort,
    EndpointSlice,
    LabelSelector,
    Namespace,
    Pod,
    Service,
    ServicePort,
    Workload,
    selector_from_map,
)
from portfwd.kube.targets import PortMapping, Target

WORKLOAD_KINDS = tuple(k.name for k in WORKLOADS)  # choose_for_workload's kinds

T = TypeVar("T")

_MAX_LISTED = 3  # pods named in a "no Ready pod" message before "..."


class ResolveClient(Protocol):
    """The part of :class:`portfwd.kube.client.KubeClient` resolution needs (tests fake it)."""

    async def get_namespace(self, name: str) -> Namespace: ...

    async def get_pod(self, ns: str, name: str) -> Pod: ...

    async def list_pods(self, ns: str, label_selector: str | None = None) -> list[Pod]: ...

    async def get_service(self, ns: str, name: str) -> Service: ...

    async def list_endpointslices(
        self, ns: str, service: str | None = None
    ) -> list[EndpointSlice]: ...

    async def get_workload(self, kind: str, ns: str, name: str) -> Workload: ...


@dataclass(frozen=True)
class Resolution:
    """Where one forward goes right now.

    `local_port_default` is kubectl's local port for a mapping given as a bare port *name*
    (`https`): the service port number for a Service, the container port for a pod.
    """

    pod: Pod
    container_port: int
    port_name: str
    protocol: str
    decisions: tuple[str, ...]
    local_port_default: int = 0
    service_port: int | None = None


def local_port_for(mapping: PortMapping, resolution: Resolution) -> int:
    """The local port to bind for `mapping` (0 = a free one), following kubectl."""
    if mapping.local_from_remote:
        return resolution.local_port_default
    return mapping.local_port


async def resolve(client: ResolveClient, ns: str, target: Target, remote: int | str) -> Resolution:
    """Resolve `target` in namespace `ns` and its `remote` port (number or name).

    A numeric string (`"80"`, as a form field gives it) counts as a number.
    """
    remote = _remote_port(remote)
    if target.kind == "pod":
        return choose_for_pod(
            target, await _fetch(client, ns, client.get_pod(ns, target.name)), remote
        )
    if target.kind == "service":
        return await _resolve_service(client, ns, target, remote)
    if target.kind in WORKLOAD_KINDS:
        return await _resolve_workload(client, ns, target, remote)
    raise ResolveError(f"cannot forward to a {target.kind}; use a pod, service or workload")


async def _resolve_service(
    client: ResolveClient, ns: str, target: Target, remote: int | str
) -> Resolution:
    svc = await _fetch(client, ns, client.get_service(ns, target.name))
    _, selector = _service_checks(target, svc, remote)  # permanent errors before any listing
    pods = await client.list_pods(ns, selector.to_query())
    slices: list[EndpointSlice] | None
    note = ""
    try:
        slices = await client.list_endpointslices(ns, svc.name)
    except Forbidden:
        slices = None
        note = "no permission to list EndpointSlices; chose by pod readiness"
    except NotFound:
        slices = None  # a server without discovery.k8s.io/v1
        note = "the API server has no EndpointSlices; chose by pod readiness"
    resolution = choose_for_service(target, svc, pods, slices, remote)
    if note:
        head, *rest = resolution.decisions
        resolution = dataclasses.replace(resolution, decisions=(head, note, *rest))
    return resolution


async def _resolve_workload(
    client: ResolveClient, ns: str, target: Target, remote: int | str
) -> Resolution:
    workload = await _fetch(client, ns, client.get_workload(target.kind, ns, target.name))
    selector = _workload_selector(target, workload)
    pods = await client.list_pods(ns, selector.to_query())
    return choose_for_workload(target, workload, pods, remote)


def _remote_port(remote: int | str) -> int | str:
    """`remote` with a numeric string as a number; InputError when out of range."""
    if isinstance(remote, str) and remote.isascii() and remote.isdigit():
        remote = int(remote)
    if isinstance(remote, int) and not 1 <= remote <= 65535:
        raise InputError(f"invalid remote port {remote}: ports are 1..65535")
    return remote


# --- shared helpers ------------------------------------------------------------------------


async def _fetch(client: ResolveClient, ns: str, call: Awaitable[T]) -> T:
    """Await `call`; when it is a 404, say so if the namespace itself is what is missing."""
    try:
        return await call
    except NotFound:
        await _check_namespace(client, ns)
        raise


async def _check_namespace(client: ResolveClient, ns: str) -> None:
    try:
        await client.get_namespace(ns)
    except NotFound:
        raise NotFound(
            f'namespace "{ns}" not found; check -n/--namespace or the namespace of the context',
            status=404,
            reason="NotFound",
        ) from None
    except (ApiError, ClusterUnreachable):
        pass  # cannot tell (e.g. no RBAC on namespaces): the original 404 stands


def _label(target: Target) -> str:
    return str(target)


def _oldest(pods: Iterable[Pod]) -> Pod:
    return min(pods, key=lambda p: (p.meta.creation_timestamp or "9999", p.name))


def _choice(count: int, noun: str) -> str:
    return f"the only Ready {noun}" if count == 1 else f"the oldest of {count} Ready {noun}s"


def _port_text(port: ContainerPort) -> str:
    return f"{port.name} ({port.container_port})" if port.name else str(port.container_port)


def _not_running(pod: Pod) -> NoReadyPod:
    reasons = sorted({c.reason for c in pod.container_statuses if c.reason})
    if not reasons and pod.reason:
        reasons = [pod.reason]
    if not reasons and pod.phase == "Pending" and not pod.node_name:
        reasons = ["not scheduled to a node yet"]
    detail = f": {', '.join(reasons)}" if reasons else ""
    return NoReadyPod(f"pod {pod.name} is not running (phase {pod.phase}{detail})")


def _no_ready_pod(
    label: str,
    selector: str,
    pods: list[Pod],
    why: dict[str, str] | None = None,
    *,
    replicas: int | None = None,
) -> NoReadyPod:
    if not pods:
        scaled = " (it is scaled to 0 replicas)" if replicas == 0 else ""
        return NoReadyPod(
            f"{label} has no Ready pod: no pods match its selector {selector}{scaled}"
        )
    count = (
        f"{len(pods)} pods match its selector" if len(pods) > 1 else "1 pod matches its selector"
    )
    listing = _why_not_ready(pods, why or {})
    return NoReadyPod(f"{label} has no Ready pod: {count}, none Ready ({listing})")


def _skipped_line(pods: list[Pod], why: dict[str, str]) -> str:
    """A decision line naming the pods passed over, and why (first few)."""
    return f"not Ready: {_why_not_ready(pods, why)}" if pods else ""


def _why_not_ready(pods: list[Pod], why: dict[str, str]) -> str:
    """`name: reason; ...` for the first few pods by name: one line, however many pods."""
    ordered = sorted(pods, key=lambda p: p.name)
    parts = [f"{p.name}: {why.get(p.name) or p.not_ready_reason()}" for p in ordered[:_MAX_LISTED]]
    if len(ordered) > _MAX_LISTED:
        parts.append("...")
    return "; ".join(parts)


def _check_tcp(port: ContainerPort | None, shown: str, label: str, pod: Pod) -> None:
    """Refuse a port only declared as UDP/SCTP (kubectl's checkUDPPortInPod)."""
    if port is None or port.protocol.upper() == "TCP":
        return
    if any(
        p.container_port == port.container_port and p.protocol.upper() == "TCP"
        for p in pod.all_ports
    ):
        return
    raise ResolveError(
        f"port {shown} of {label} is {port.protocol.upper()}; port-forward supports TCP only"
    )


def _pod_port(pod: Pod, remote: int | str, label: str) -> tuple[int, str, list[str]]:
    """(container port, its name, decision lines) for `remote` on `pod`."""
    if isinstance(remote, int):
        declared = pod.container_port(remote)
        _check_tcp(declared, str(remote), label, pod)
        if declared is None:
            return remote, "", [f"port {remote} is not declared in the pod spec; forwarded as-is"]
        return remote, declared.name, []
    named = pod.container_port(remote)
    if named is None:
        raise _no_named_port(pod, remote)
    _check_tcp(named, f'"{remote}" ({named.container_port})', label, pod)
    return named.container_port, named.name, [f"port {remote} -> {named.container_port}"]


def _to_pod_port(pod: Pod, port: int, name: str, decisions: list[str]) -> Resolution:
    """A pod or workload target: kubectl's local port for a bare port name is the pod's."""
    return Resolution(
        pod=pod,
        container_port=port,
        port_name=name,
        protocol="TCP",
        decisions=tuple(decisions),
        local_port_default=port,
    )


def _selected(pods: Iterable[Pod], selector: LabelSelector, ns: str) -> list[Pod]:
    """Pods `selector` matches in namespace `ns` (when both are known): a server ignoring the
    query or a namespace-wide cache adds no strangers."""
    return [
        p
        for p in pods
        if selector.matches(p.meta.labels) and not (ns and p.namespace and p.namespace != ns)
    ]


def _pick(candidates: list[Pod], prefer: str | None) -> tuple[Pod, bool]:
    """(`prefer` when it is a candidate, True) or (the oldest candidate, False)."""
    for p in candidates:
        if p.name == prefer:
            return p, True
    return _oldest(candidates), False


def _serving(pod: Pod) -> bool:
    """Can take a forward now: Ready, Running and not on its way out."""
    return pod.ready and pod.phase == "Running" and not pod.terminating


def _no_named_port(pod: Pod, name: str) -> ResolveError:
    named = [p for p in pod.all_ports if p.name]
    if named:
        listing = "its named ports: " + ", ".join(_port_text(p) for p in named)
    else:
        listing = "it declares no named ports"
    return ResolveError(f'pod {pod.name} has no container port named "{name}"; {listing}')


# --- pod -----------------------------------------------------------------------------------


def choose_for_pod(target: Target, pod: Pod, remote: int | str) -> Resolution:
    """A `pod/NAME` target on `pod` (no I/O).

    Raises NoReadyPod when the pod is not Running (yet), ResolveError for a port it cannot
    forward (no such named port, UDP only).
    """
    remote = _remote_port(remote)
    if pod.phase != "Running":
        raise _not_running(pod)
    label = _label(target)
    decisions: list[str] = []
    if pod.terminating:
        decisions.append(
            f"pod {pod.name} is terminating; connections fail once it is gone (then restart)"
        )
    elif not pod.ready:
        decisions.append(f"pod {pod.name} is Running but not Ready ({pod.not_ready_reason()})")
    port, name, notes = _pod_port(pod, remote, label)
    decisions.insert(0, f"{label} port {port}" + (f" ({name})" if name else ""))
    decisions.extend(notes)
    return _to_pod_port(pod, port, name, decisions)


# --- service -------------------------------------------------------------------------------


def _service_ports_text(svc: Service) -> str:
    if not svc.ports:
        return "it declares no ports"
    shown = [
        f"{p.port}/{p.protocol.upper()}" + (f" ({p.name})" if p.name else "") for p in svc.ports
    ]
    return "its ports: " + ", ".join(shown)


def _service_port(svc: Service, remote: int | str, label: str) -> ServicePort:
    """The service port `remote` names (number or name), TCP only (kubectl's UDP check)."""
    if isinstance(remote, int):
        matches = [p for p in svc.ports if p.port == remote]
        if not matches:
            raise ResolveError(f"{label} does not expose port {remote}; {_service_ports_text(svc)}")
        shown = str(remote)
    else:
        by_name = [p for p in svc.ports if p.name == remote]
        if not by_name:
            raise ResolveError(f'{label} has no port named "{remote}"; {_service_ports_text(svc)}')
        # A UDP port whose number also has a TCP port is forwarded as that TCP port (kubectl
        # only refuses numbers that are UDP-only).
        matches = by_name + [p for p in svc.ports if p.port == by_name[0].port and p not in by_name]
        shown = f'"{remote}" ({by_name[0].port})'
    for port in matches:
        if port.protocol.upper() == "TCP":
            return port
    raise ResolveError(
        f"port {shown} of {label} is {matches[0].protocol.upper()}; port-forward supports TCP only"
    )


def _service_checks(
    target: Target, svc: Service, remote: int | str
) -> tuple[ServicePort, LabelSelector]:
    """The service port and pod selector, or the permanent reason there are none."""
    label = _label(target)
    if svc.type == "ExternalName":
        raise ResolveError(
            f"{label} is an ExternalName service (a DNS alias, no pods); port-forward needs pods"
        )
    if svc.selector is None:
        raise ResolveError(
            f"{label} has no selector, so no pods back it; forward to a pod instead (pod/NAME)"
        )
    return _service_port(svc, remote, label), selector_from_map(svc.selector)


def _own_slices(svc: Service, slices: Sequence[EndpointSlice]) -> list[EndpointSlice]:
    """The slices of `svc` among `slices` (a cache may hold other services' too)."""
    ns = svc.meta.namespace
    return [
        s
        for s in slices
        if s.service_name == svc.name and not (ns and s.meta.namespace and s.meta.namespace != ns)
    ]


def choose_for_service(
    target: Target,
    svc: Service,
    pods: Sequence[Pod],
    slices: Sequence[EndpointSlice] | None,
    remote: int | str,
    *,
    prefer: str | None = None,
) -> Resolution:
    """A `svc/NAME` target: a Ready endpoint of `svc` and its targetPort (no I/O).

    `pods` and `slices` may be whole caches: pods outside the service's namespace or
    selector and slices of other services are ignored. `slices` None means "EndpointSlices
    unavailable" (no permission, old server) and an empty list "none yet": both choose by pod
    readiness (the caller adds a decision note for None). `prefer` (the pod in use) is kept
    while it is still a candidate; otherwise the oldest one is chosen.

    Raises NoReadyPod when no pod can serve right now, ResolveError for what the user must
    change (ExternalName, no selector, no such port, UDP, a named targetPort no pod declares).
    """
    remote = _remote_port(remote)
    label = _label(target)
    sport, selector = _service_checks(target, svc, remote)
    found = _service_candidates(label, svc, sport, selector, pods, slices)
    pod, kept = _pick(found.candidates, prefer)
    return _service_resolution(label, sport, pod, found, kept)


def spread_for_service(
    target: Target,
    svc: Service,
    pods: Sequence[Pod],
    slices: Sequence[EndpointSlice] | None,
    remote: int | str,
) -> list[Resolution]:
    """Every Ready endpoint of `svc`, each with its own targetPort (no I/O): where a forward
    that behaves like the Service (`--spread`) may send a new connection. Oldest first.

    Raises as :func:`choose_for_service` does when there is none.
    """
    remote = _remote_port(remote)
    label = _label(target)
    sport, selector = _service_checks(target, svc, remote)
    found = _service_candidates(label, svc, sport, selector, pods, slices)
    return [_service_resolution(label, sport, p, found, False) for p in _by_age(found.candidates)]


def _by_age(pods: Iterable[Pod]) -> list[Pod]:
    return sorted(pods, key=lambda p: (p.meta.creation_timestamp or "9999", p.name))


@dataclass(frozen=True)
class _Candidates:
    """The pods that may serve a Service now, and what the decision lines say of the rest."""

    candidates: list[Pod]
    pods: list[Pod]  # every pod of the selector
    why: dict[str, str]
    endpoint_count: int
    by_endpoints: bool
    notes: tuple[str, ...]


def _service_candidates(
    label: str,
    svc: Service,
    sport: ServicePort,
    selector: LabelSelector,
    all_pods: Sequence[Pod],
    slices: Sequence[EndpointSlice] | None,
) -> _Candidates:
    """The Ready endpoints of `svc` (declaring a named targetPort), or NoReadyPod/ResolveError."""
    notes: list[str] = []
    pods = _selected(all_pods, selector, svc.meta.namespace)
    by_name = {p.name: p for p in pods}
    why: dict[str, str] = {}
    ready_names: set[str] = set()
    endpoint_count = 0
    own = _own_slices(svc, slices) if slices is not None else None
    by_endpoints = bool(own)
    if own:
        for eps in own:
            for ep in eps.endpoints:
                ref = ep.target_ref
                if ref is None or ref.kind != "Pod":
                    continue
                if svc.meta.namespace and ref.namespace and ref.namespace != svc.meta.namespace:
                    continue
                endpoint_count += 1
                if ep.ready and not ep.terminating:
                    ready_names.add(ref.name)
                elif ep.terminating:
                    why[ref.name] = "terminating"
        for p in pods:
            if p.ready and p.name not in ready_names and p.name not in why:
                why[p.name] = "Ready, but not yet a Ready endpoint of the service"
        candidates = [
            by_name[n]
            for n in sorted(ready_names)
            if n in by_name and by_name[n].phase == "Running" and not by_name[n].terminating
        ]
    else:
        if own is not None:
            notes.append(f"{label} has no EndpointSlices yet; chose by pod readiness")
        candidates = [p for p in pods if _serving(p)]
        endpoint_count = len(pods)

    if not candidates:
        raise _no_ready_pod(label, selector.to_query(), pods, why)

    target_port = sport.target_port
    if isinstance(target_port, str):
        declaring = [p for p in candidates if p.container_port(target_port) is not None]
        if not declaring:
            example = _oldest(candidates)
            raise ResolveError(
                f'{label} port {sport.port} has targetPort "{target_port}", but no Ready pod '
                f"declares a container port of that name ({_no_named_port(example, target_port)})"
            )
        candidates = declaring
    return _Candidates(candidates, pods, why, endpoint_count, by_endpoints, tuple(notes))


def _service_resolution(
    label: str, sport: ServicePort, pod: Pod, found: _Candidates, kept: bool
) -> Resolution:
    """`pod` (one of `found.candidates`) as the Service's endpoint: its targetPort, the lines."""
    target_port = sport.target_port
    if isinstance(target_port, str):
        cport = pod.container_port(target_port)
        assert cport is not None  # candidates declare it
        _check_tcp(cport, f'"{target_port}" ({cport.container_port})', f"pod/{pod.name}", pod)
        container_port, port_name = cport.container_port, cport.name
        via = f"targetPort {target_port} -> "
    else:
        container_port = target_port
        declared = pod.container_port(container_port)
        port_name = declared.name if declared else sport.name
        via = "" if target_port == sport.port else f"targetPort {target_port} -> "
    shown_port = f"{sport.port}" + (f" ({sport.name})" if sport.name else "")
    decisions = [f"{label} port {shown_port} -> {via}pod {pod.name} port {container_port}"]
    decisions.extend(found.notes)
    count = found.endpoint_count
    if kept:
        still = "still a Ready endpoint" if found.by_endpoints else "still Ready"
        decisions.append(f"kept pod {pod.name}: {still} ({count} in total)")
    else:
        decisions.append(
            f"chose pod {pod.name}: {_choice(len(found.candidates), 'endpoint')} ({count} in total)"
        )
    chosen_from = {p.name for p in found.candidates}
    skipped = _skipped_line([p for p in found.pods if p.name not in chosen_from], found.why)
    if skipped:
        decisions.append(skipped)
    return Resolution(
        pod=pod,
        container_port=container_port,
        port_name=port_name,
        protocol="TCP",
        decisions=tuple(decisions),
        local_port_default=sport.port,
        service_port=sport.port,
    )


# --- deployment / statefulset / replicaset ---------------------------------------------------


def _workload_selector(target: Target, workload: Workload) -> LabelSelector:
    if workload.selector.empty:
        raise ResolveError(
            f"{_label(target)} has an empty selector; forward to a pod instead (pod/NAME)"
        )
    return workload.selector


def choose_for_workload(
    target: Target,
    workload: Workload,
    pods: Sequence[Pod],
    remote: int | str,
    *,
    prefer: str | None = None,
) -> Resolution:
    """A `deploy/`, `sts/` or `rs/NAME` target: a Ready, Running pod of `workload` (no I/O).

    `pods` may be a whole cache: pods outside the workload's namespace or selector are
    ignored. `prefer` (the pod in use) is kept while it still serves; otherwise the oldest
    Ready pod is chosen. Raises NoReadyPod when no pod serves right now, ResolveError for an
    empty selector or a named port the pods do not declare.
    """
    remote = _remote_port(remote)
    label = _label(target)
    selector = _workload_selector(target, workload)
    query = selector.to_query()
    pods = _selected(pods, selector, workload.meta.namespace)
    ready = [p for p in pods if _serving(p)]
    if not ready:
        raise _no_ready_pod(label, query, pods, replicas=workload.replicas)
    if isinstance(remote, str):
        declaring = [p for p in ready if p.container_port(remote) is not None]
        if not declaring:
            raise _no_named_port(_oldest(ready), remote)
        ready = declaring
    pod, kept = _pick(ready, prefer)
    port, name, notes = _pod_port(pod, remote, f"pod/{pod.name}")
    how = "still Ready" if kept else _choice(len(ready), "pod")
    decisions = [
        f"{label} -> pod {pod.name} port {port}" + (f" ({name})" if name else ""),
        f"{'kept' if kept else 'chose'} pod {pod.name}: {how} ({len(pods)} match the selector"
        f" {query})",
        *notes,
    ]
    ready_names = {p.name for p in ready}
    skipped = _skipped_line([p for p in pods if p.name not in ready_names], {})
    if skipped:
        decisions.append(skipped)
    return _to_pod_port(pod, port, name, decisions)


def spread_for_workload(
    target: Target, workload: Workload, pods: Sequence[Pod], remote: int | str
) -> list[Resolution]:
    """Every Ready pod of `workload` with its port (no I/O), oldest first; raises as
    :func:`choose_for_workload` does when there is none."""
    first = choose_for_workload(target, workload, pods, remote)
    selector = _workload_selector(target, workload)
    ready = [p for p in _selected(pods, selector, workload.meta.namespace) if _serving(p)]
    out = [first]
    for pod in _by_age(ready):
        if pod.name != first.pod.name and (isinstance(remote, int) or pod.container_port(remote)):
            out.append(choose_for_workload(target, workload, [pod], remote))
    return out
