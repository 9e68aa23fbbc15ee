"""Small typed views of the Kubernetes objects portfwd reads.

Only the fields we use are kept; everything is parsed defensively from the API's JSON (a
missing field gets its Kubernetes default). No generated model library: these load in
microseconds and keep the runtime footprint small.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from portfwd.constants import LABEL_SERVICE_NAME

JSON = dict[str, Any]


def _d(obj: Any, key: str) -> JSON:
    value = obj.get(key) if isinstance(obj, dict) else None
    return value if isinstance(value, dict) else {}


def _l(obj: Any, key: str) -> list[Any]:
    value = obj.get(key) if isinstance(obj, dict) else None
    return value if isinstance(value, list) else []


def _s(obj: Any, key: str, default: str = "") -> str:
    value = obj.get(key) if isinstance(obj, dict) else None
    return value if isinstance(value, str) else default


def _i(obj: Any, key: str, default: int = 0) -> int:
    value = obj.get(key) if isinstance(obj, dict) else None
    return value if isinstance(value, int) and not isinstance(value, bool) else default


def _labels(obj: Any, key: str) -> dict[str, str]:
    return {str(k): str(v) for k, v in _d(obj, key).items()}


@dataclass(frozen=True)
class OwnerRef:
    kind: str
    name: str
    uid: str = ""


@dataclass(frozen=True)
class ObjectMeta:
    name: str
    namespace: str = ""
    uid: str = ""
    resource_version: str = ""
    labels: dict[str, str] = field(default_factory=dict)
    annotations: dict[str, str] = field(default_factory=dict)
    creation_timestamp: str = ""
    deletion_timestamp: str | None = None
    owner_references: tuple[OwnerRef, ...] = ()

    @classmethod
    def from_dict(cls, data: JSON) -> ObjectMeta:
        meta = _d(data, "metadata")
        owners = tuple(
            OwnerRef(kind=_s(o, "kind"), name=_s(o, "name"), uid=_s(o, "uid"))
            for o in _l(meta, "ownerReferences")
        )
        deletion = meta.get("deletionTimestamp")
        return cls(
            name=_s(meta, "name"),
            namespace=_s(meta, "namespace"),
            uid=_s(meta, "uid"),
            resource_version=_s(meta, "resourceVersion"),
            labels=_labels(meta, "labels"),
            annotations=_labels(meta, "annotations"),
            creation_timestamp=_s(meta, "creationTimestamp"),
            deletion_timestamp=deletion if isinstance(deletion, str) else None,
            owner_references=owners,
        )


@dataclass(frozen=True)
class LabelSelectorRequirement:
    key: str
    operator: str  # In, NotIn, Exists, DoesNotExist
    values: tuple[str, ...] = ()


@dataclass(frozen=True)
class LabelSelector:
    match_labels: dict[str, str] = field(default_factory=dict)
    match_expressions: tuple[LabelSelectorRequirement, ...] = ()

    @classmethod
    def from_dict(cls, data: Any) -> LabelSelector:
        exprs = tuple(
            LabelSelectorRequirement(
                key=_s(e, "key"),
                operator=_s(e, "operator"),
                values=tuple(str(v) for v in _l(e, "values")),
            )
            for e in _l(data, "matchExpressions")
        )
        return cls(match_labels=_labels(data, "matchLabels"), match_expressions=exprs)

    @property
    def empty(self) -> bool:
        return not self.match_labels and not self.match_expressions

    def to_query(self) -> str:
        """The `labelSelector` query string the API server understands."""
        parts = [f"{k}={v}" for k, v in sorted(self.match_labels.items())]
        for e in self.match_expressions:
            values = ",".join(e.values)
            if e.operator == "In":
                parts.append(f"{e.key} in ({values})")
            elif e.operator == "NotIn":
                parts.append(f"{e.key} notin ({values})")
            elif e.operator == "Exists":
                parts.append(e.key)
            elif e.operator == "DoesNotExist":
                parts.append(f"!{e.key}")
        return ",".join(parts)

    def matches(self, labels: dict[str, str]) -> bool:
        if any(labels.get(k) != v for k, v in self.match_labels.items()):
            return False
        for e in self.match_expressions:
            present = e.key in labels
            if e.operator == "In" and (not present or labels[e.key] not in e.values):
                return False
            if e.operator == "NotIn" and present and labels[e.key] in e.values:
                return False
            if e.operator == "Exists" and not present:
                return False
            if e.operator == "DoesNotExist" and present:
                return False
        return True


def selector_from_map(labels: dict[str, str]) -> LabelSelector:
    """A Service's plain `selector` map as a LabelSelector."""
    return LabelSelector(match_labels=dict(labels))


@dataclass(frozen=True)
class Namespace:
    meta: ObjectMeta
    phase: str = "Active"

    @classmethod
    def from_dict(cls, data: JSON) -> Namespace:
        return cls(meta=ObjectMeta.from_dict(data), phase=_s(_d(data, "status"), "phase", "Active"))

    @property
    def name(self) -> str:
        return self.meta.name


@dataclass(frozen=True)
class ContainerPort:
    container_port: int
    name: str = ""
    protocol: str = "TCP"

    @classmethod
    def from_dict(cls, data: JSON) -> ContainerPort:
        return cls(
            container_port=_i(data, "containerPort"),
            name=_s(data, "name"),
            protocol=_s(data, "protocol", "TCP"),
        )


@dataclass(frozen=True)
class Container:
    name: str
    ports: tuple[ContainerPort, ...] = ()

    @classmethod
    def from_dict(cls, data: JSON) -> Container:
        return cls(
            name=_s(data, "name"),
            ports=tuple(ContainerPort.from_dict(p) for p in _l(data, "ports")),
        )


@dataclass(frozen=True)
class ContainerStatus:
    name: str
    ready: bool = False
    restart_count: int = 0
    state: str = ""  # running | waiting | terminated
    reason: str = ""  # e.g. CrashLoopBackOff, ContainerCreating, Error
    message: str = ""

    @classmethod
    def from_dict(cls, data: JSON) -> ContainerStatus:
        state_obj = _d(data, "state")
        state = next(iter(state_obj), "") if state_obj else ""
        detail = _d(state_obj, state) if state else {}
        return cls(
            name=_s(data, "name"),
            ready=bool(data.get("ready", False)),
            restart_count=_i(data, "restartCount"),
            state=state,
            reason=_s(detail, "reason"),
            message=_s(detail, "message"),
        )


@dataclass(frozen=True)
class PodCondition:
    type: str
    status: str
    reason: str = ""
    message: str = ""


@dataclass(frozen=True)
class Pod:
    meta: ObjectMeta
    node_name: str = ""
    containers: tuple[Container, ...] = ()
    phase: str = "Pending"
    pod_ip: str = ""
    conditions: tuple[PodCondition, ...] = ()
    container_statuses: tuple[ContainerStatus, ...] = ()
    reason: str = ""
    message: str = ""

    @classmethod
    def from_dict(cls, data: JSON) -> Pod:
        spec, status = _d(data, "spec"), _d(data, "status")
        return cls(
            meta=ObjectMeta.from_dict(data),
            node_name=_s(spec, "nodeName"),
            containers=tuple(Container.from_dict(c) for c in _l(spec, "containers")),
            phase=_s(status, "phase", "Pending"),
            pod_ip=_s(status, "podIP"),
            conditions=tuple(
                PodCondition(
                    type=_s(c, "type"),
                    status=_s(c, "status"),
                    reason=_s(c, "reason"),
                    message=_s(c, "message"),
                )
                for c in _l(status, "conditions")
            ),
            container_statuses=tuple(
                ContainerStatus.from_dict(c) for c in _l(status, "containerStatuses")
            ),
            reason=_s(status, "reason"),
            message=_s(status, "message"),
        )

    @property
    def name(self) -> str:
        return self.meta.name

    @property
    def namespace(self) -> str:
        return self.meta.namespace

    @property
    def ready(self) -> bool:
        """The pod's Ready condition (what Services and kubectl use)."""
        return any(c.type == "Ready" and c.status == "True" for c in self.conditions)

    @property
    def terminating(self) -> bool:
        return self.meta.deletion_timestamp is not None

    @property
    def ready_count(self) -> tuple[int, int]:
        """(ready containers, containers), as kubectl's READY column shows them."""
        total = len(self.containers) or len(self.container_statuses)
        return sum(1 for c in self.container_statuses if c.ready), total

    @property
    def restarts(self) -> int:
        return sum(c.restart_count for c in self.container_statuses)

    def display_status(self) -> str:
        """The STATUS column as kubectl prints it (CrashLoopBackOff, Pending, Running...)."""
        if self.terminating:
            return "Terminating"
        for c in self.container_statuses:
            if c.state in ("waiting", "terminated") and c.reason:
                return c.reason
        return self.reason or self.phase

    def not_ready_reason(self) -> str:
        """Why this pod is not Ready, in words a user can act on."""
        if self.terminating:
            return "terminating"
        if self.phase != "Running":
            waiting = [c.reason for c in self.container_statuses if c.reason]
            detail = f" ({', '.join(waiting)})" if waiting else ""
            return f"phase {self.phase}{detail}"
        for c in self.container_statuses:
            if not c.ready:
                return f"container {c.name} not ready" + (f" ({c.reason})" if c.reason else "")
        for cond in self.conditions:
            if cond.type == "Ready" and cond.status != "True":
                return "readiness probe failing" + (f": {cond.message}" if cond.message else "")
        return "not ready"

    def container_port(self, port: int | str) -> ContainerPort | None:
        """The container port by number or by name (first match across containers)."""
        for container in self.containers:
            for p in container.ports:
                if (isinstance(port, int) and p.container_port == port) or (
                    isinstance(port, str) and p.name == port
                ):
                    return p
        return None

    @property
    def all_ports(self) -> tuple[ContainerPort, ...]:
        return tuple(p for c in self.containers for p in c.ports)


@dataclass(frozen=True)
class ServicePort:
    port: int
    name: str = ""
    protocol: str = "TCP"
    target_port: int | str = 0  # 0 means "same as port" (Kubernetes' default)
    node_port: int = 0

    @classmethod
    def from_dict(cls, data: JSON) -> ServicePort:
        port = _i(data, "port")
        raw_target = data.get("targetPort")
        target: int | str
        if isinstance(raw_target, str) and raw_target.isdigit():
            target = int(raw_target)
        elif isinstance(raw_target, int | str) and not isinstance(raw_target, bool):
            target = raw_target
        else:
            target = port
        return cls(
            port=port,
            name=_s(data, "name"),
            protocol=_s(data, "protocol", "TCP"),
            target_port=target or port,
            node_port=_i(data, "nodePort"),
        )


@dataclass(frozen=True)
class Service:
    meta: ObjectMeta
    type: str = "ClusterIP"
    cluster_ip: str = ""
    selector: dict[str, str] | None = None  # None: a service without selector
    ports: tuple[ServicePort, ...] = ()

    @classmethod
    def from_dict(cls, data: JSON) -> Service:
        spec = _d(data, "spec")
        raw_selector = spec.get("selector")
        selector = (
            {str(k): str(v) for k, v in raw_selector.items()}
            if isinstance(raw_selector, dict) and raw_selector
            else None
        )
        return cls(
            meta=ObjectMeta.from_dict(data),
            type=_s(spec, "type", "ClusterIP"),
            cluster_ip=_s(spec, "clusterIP"),
            selector=selector,
            ports=tuple(ServicePort.from_dict(p) for p in _l(spec, "ports")),
        )

    @property
    def name(self) -> str:
        return self.meta.name

    @property
    def headless(self) -> bool:
        return self.cluster_ip == "None"


@dataclass(frozen=True)
class TargetRef:
    kind: str
    name: str
    namespace: str = ""
    uid: str = ""


@dataclass(frozen=True)
class Endpoint:
    addresses: tuple[str, ...]
    ready: bool = True  # EndpointSlice semantics: unset means ready
    serving: bool = True
    terminating: bool = False
    target_ref: TargetRef | None = None
    node_name: str = ""

    @classmethod
    def from_dict(cls, data: JSON) -> Endpoint:
        cond = _d(data, "conditions")
        ready = cond.get("ready")
        serving = cond.get("serving")
        ref = data.get("targetRef")
        return cls(
            addresses=tuple(str(a) for a in _l(data, "addresses")),
            ready=True if ready is None else bool(ready),
            serving=(True if ready is None else bool(ready)) if serving is None else bool(serving),
            terminating=bool(cond.get("terminating", False)),
            target_ref=TargetRef(
                kind=_s(ref, "kind"),
                name=_s(ref, "name"),
                namespace=_s(ref, "namespace"),
                uid=_s(ref, "uid"),
            )
            if isinstance(ref, dict)
            else None,
            node_name=_s(data, "nodeName"),
        )


@dataclass(frozen=True)
class EndpointPort:
    port: int
    name: str = ""
    protocol: str = "TCP"

    @classmethod
    def from_dict(cls, data: JSON) -> EndpointPort:
        return cls(port=_i(data, "port"), name=_s(data, "name"), protocol=_s(data, "protocol"))


@dataclass(frozen=True)
class EndpointSlice:
    meta: ObjectMeta
    address_type: str = "IPv4"
    endpoints: tuple[Endpoint, ...] = ()
    ports: tuple[EndpointPort, ...] = ()

    @classmethod
    def from_dict(cls, data: JSON) -> EndpointSlice:
        return cls(
            meta=ObjectMeta.from_dict(data),
            address_type=_s(data, "addressType", "IPv4"),
            endpoints=tuple(Endpoint.from_dict(e) for e in _l(data, "endpoints")),
            ports=tuple(EndpointPort.from_dict(p) for p in _l(data, "ports")),
        )

    @property
    def service_name(self) -> str:
        return self.meta.labels.get(LABEL_SERVICE_NAME, "")


@dataclass(frozen=True)
class Workload:
    """A Deployment, StatefulSet or ReplicaSet: the fields portfwd needs are the same."""

    kind: str
    meta: ObjectMeta
    selector: LabelSelector
    replicas: int = 1
    ready_replicas: int = 0
    available_replicas: int = 0
    updated_replicas: int = 0
    template_ports: tuple[ContainerPort, ...] = ()

    @classmethod
    def from_dict(cls, kind: str, data: JSON) -> Workload:
        spec, status = _d(data, "spec"), _d(data, "status")
        containers = _l(_d(_d(spec, "template"), "spec"), "containers")
        raw_replicas = spec.get("replicas")
        return cls(
            kind=kind,
            meta=ObjectMeta.from_dict(data),
            selector=LabelSelector.from_dict(_d(spec, "selector")),
            replicas=raw_replicas if isinstance(raw_replicas, int) else 1,
            ready_replicas=_i(status, "readyReplicas"),
            available_replicas=_i(status, "availableReplicas"),
            updated_replicas=_i(status, "updatedReplicas"),
            template_ports=tuple(
                ContainerPort.from_dict(p) for c in containers for p in _l(c, "ports")
            ),
        )

    @property
    def name(self) -> str:
        return self.meta.name
