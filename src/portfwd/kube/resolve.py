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
name), the one Ready the longest, which is also kubectl's preference. A forward resolves when
it starts (and again when restarted); it does not follow a pod that goes away later. Every step
is written into `Resolution.decisions`, short lines for the forward's log.
"""

from __future__ import annotations

from collections.abc import Awaitable, Iterable
from dataclasses import dataclass
from typing import Protocol, TypeVar

from portfwd.errors import InputError, ResolveError
from portfwd.kube.client import ApiError, ClusterUnreachable, Forbidden, NotFound
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
from portfwd.kube.targets import SHORT_KIND, PortMapping, Target

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
    if isinstance(remote, str) and remote.isascii() and remote.isdigit():
        remote = int(remote)
    if isinstance(remote, int) and not 1 <= remote <= 65535:
        raise InputError(f"invalid remote port {remote}: ports are 1..65535")
    if target.kind == "pod":
        return await _resolve_pod(client, ns, target, remote)
    if target.kind == "service":
        return await _resolve_service(client, ns, target, remote)
    if target.kind in ("deployment", "statefulset", "replicaset"):
        return await _resolve_workload(client, ns, target, remote)
    raise ResolveError(f"cannot forward to a {target.kind}; use a pod, service or workload")


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
    return f"{SHORT_KIND.get(target.kind, target.kind)}/{target.name}"


def _oldest(pods: Iterable[Pod]) -> Pod:
    return min(pods, key=lambda p: (p.meta.creation_timestamp or "9999", p.name))


def _choice(count: int, noun: str) -> str:
    return f"the only Ready {noun}" if count == 1 else f"the oldest of {count} Ready {noun}s"


def _port_text(port: ContainerPort) -> str:
    return f"{port.name} ({port.container_port})" if port.name else str(port.container_port)


def _not_running(pod: Pod) -> ResolveError:
    reasons = sorted({c.reason for c in pod.container_statuses if c.reason})
    if not reasons and pod.reason:
        reasons = [pod.reason]
    if not reasons and pod.phase == "Pending" and not pod.node_name:
        reasons = ["not scheduled to a node yet"]
    detail = f": {', '.join(reasons)}" if reasons else ""
    return ResolveError(f"pod {pod.name} is not running (phase {pod.phase}{detail})")


def _no_ready_pod(
    label: str,
    selector: str,
    pods: list[Pod],
    why: dict[str, str] | None = None,
    *,
    replicas: int | None = None,
) -> ResolveError:
    if not pods:
        scaled = " (it is scaled to 0 replicas)" if replicas == 0 else ""
        return ResolveError(
            f"{label} has no Ready pod: no pods match its selector {selector}{scaled}"
        )
    count = (
        f"{len(pods)} pods match its selector" if len(pods) > 1 else "1 pod matches its selector"
    )
    listing = _why_not_ready(pods, why or {})
    return ResolveError(f"{label} has no Ready pod: {count}, none Ready ({listing})")


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


async def _matching_pods(client: ResolveClient, ns: str, selector: LabelSelector) -> list[Pod]:
    """Pods `selector` matches, re-checked here so a server ignoring the query adds no strangers."""
    return [
        p
        for p in await client.list_pods(ns, selector.to_query())
        if selector.matches(p.meta.labels)
    ]


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


async def _resolve_pod(
    client: ResolveClient, ns: str, target: Target, remote: int | str
) -> Resolution:
    pod = await _fetch(client, ns, client.get_pod(ns, target.name))
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


async def _resolve_service(
    client: ResolveClient, ns: str, target: Target, remote: int | str
) -> Resolution:
    label = _label(target)
    svc = await _fetch(client, ns, client.get_service(ns, target.name))
    if svc.type == "ExternalName":
        raise ResolveError(
            f"{label} is an ExternalName service (a DNS alias, no pods); port-forward needs pods"
        )
    if svc.selector is None:
        raise ResolveError(
            f"{label} has no selector, so no pods back it; forward to a pod instead (pod/NAME)"
        )
    sport = _service_port(svc, remote, label)
    selector = selector_from_map(svc.selector)
    query = selector.to_query()
    decisions: list[str] = []

    pods = await _matching_pods(client, ns, selector)
    by_name = {p.name: p for p in pods}
    why: dict[str, str] = {}
    try:
        slices = await client.list_endpointslices(ns, svc.name)
    except Forbidden:
        slices = None
        decisions.append("no permission to list EndpointSlices; chose by pod readiness")
    except NotFound:
        slices = None  # a server without discovery.k8s.io/v1
        decisions.append("the API server has no EndpointSlices; chose by pod readiness")
    ready_names: set[str] = set()
    endpoint_count = 0
    if slices:
        for eps in slices:
            for ep in eps.endpoints:
                ref = ep.target_ref
                if ref is None or ref.kind != "Pod":
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
            by_name[n] for n in ready_names if n in by_name and by_name[n].phase == "Running"
        ]
    else:
        if slices is not None:
            decisions.append(f"{label} has no EndpointSlices yet; chose by pod readiness")
        candidates = [p for p in pods if _serving(p)]
        endpoint_count = len(pods)

    if not candidates:
        raise _no_ready_pod(label, query, pods, why)

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

    pod = _oldest(candidates)
    if isinstance(target_port, str):
        cport = pod.container_port(target_port)
        assert cport is not None  # filtered above
        _check_tcp(cport, f'"{target_port}" ({cport.container_port})', f"pod/{pod.name}", pod)
        container_port, port_name = cport.container_port, cport.name
        via = f"targetPort {target_port} -> "
    else:
        container_port = target_port
        declared = pod.container_port(container_port)
        port_name = declared.name if declared else sport.name
        via = "" if target_port == sport.port else f"targetPort {target_port} -> "
    shown_port = f"{sport.port}" + (f" ({sport.name})" if sport.name else "")
    decisions.insert(0, f"{label} port {shown_port} -> {via}pod {pod.name} port {container_port}")
    decisions.append(
        f"chose pod {pod.name}: {_choice(len(candidates), 'endpoint')} ({endpoint_count} in total)"
    )
    chosen_from = {p.name for p in candidates}
    skipped = _skipped_line([p for p in pods if p.name not in chosen_from], why)
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


async def _resolve_workload(
    client: ResolveClient, ns: str, target: Target, remote: int | str
) -> Resolution:
    label = _label(target)
    workload = await _fetch(client, ns, client.get_workload(target.kind, ns, target.name))
    selector: LabelSelector = workload.selector
    if selector.empty:
        raise ResolveError(f"{label} has an empty selector; forward to a pod instead (pod/NAME)")
    query = selector.to_query()
    pods = await _matching_pods(client, ns, selector)
    ready = [p for p in pods if _serving(p)]
    if not ready:
        raise _no_ready_pod(label, query, pods, replicas=workload.replicas)
    if isinstance(remote, str):
        declaring = [p for p in ready if p.container_port(remote) is not None]
        if not declaring:
            raise _no_named_port(_oldest(ready), remote)
        ready = declaring
    pod = _oldest(ready)
    port, name, notes = _pod_port(pod, remote, f"pod/{pod.name}")
    decisions = [
        f"{label} -> pod {pod.name} port {port}" + (f" ({name})" if name else ""),
        f"chose pod {pod.name}: {_choice(len(ready), 'pod')} ({len(pods)} match the selector"
        f" {query})",
        *notes,
    ]
    ready_names = {p.name for p in ready}
    skipped = _skipped_line([p for p in pods if p.name not in ready_names], {})
    if skipped:
        decisions.append(skipped)
    return _to_pod_port(pod, port, name, decisions)
