"""The sandbox topology: which namespaces, workloads, pods and services exist at start-up.

A topology is a YAML (or an equivalent dict) of this shape; `demo_topology.yaml` next to this
file is the full example `portfwd sandbox` and `portfwd demo` load by default::

    namespaces:
      - name: demo
        deployments:                # also: statefulsets (same keys, plus serviceName)
          - name: echo
            replicas: 2
            labels: {app: echo}     # pod labels and the selector; default {app: <name>}
            podStates: [Running]    # state of seeded pod i (default Running), see below
            containers:             # or the shorthand `image:` + `ports:` for one container
              - name: echo
                image: sandbox/echo:1
                ports:
                  - {name: echo, containerPort: 9000, backend: echo}
        pods:                       # bare pods (no controller)
          - name: crashy
            state: CrashLoopBackOff
            labels: {app: crashy}
            ports: [{containerPort: 8080, backend: http}]
        services:
          - name: echo
            selector: {app: echo}   # omit for a Service without selector (no EndpointSlices)
            clusterIP: None         # optional: headless
            ports:
              - {name: tcp, port: 80, targetPort: echo, protocol: TCP}

`hiddenPorts` (same shape as `ports`, on a container or a workload/pod shorthand) are
served by the fake kubelet but not declared in the pod spec: a port-forward to them works,
as it does for a real process listening on an undeclared port.

Port `backend` is what answers a port-forward to that container port: `echo` (every byte
back), `http` (GET /bytes/N), `line` (answers each line with "<pod> <line>"), or `HOST:PORT`
of any TCP server on this machine; without a backend, connections are refused.

Pod states: `Running` (Ready), `NotReady` (running, readiness failing), `CrashLoopBackOff`,
`ContainerCreating` (scheduled, no container yet), `Pending` (no node assigned). Pods that
controllers create later (replacements, scale-ups, rollouts) always become Running and Ready.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from portfwd.safeyaml import YamlLimitError, load_yaml  # a pure codec, shared with the client

TOPOLOGY_MAX_NODES = 200_000  # the demo topology has about 400; aliases counted expanded
POD_STATES = ("Running", "NotReady", "CrashLoopBackOff", "ContainerCreating", "Pending")
BUILTIN_BACKENDS = ("echo", "http", "line", "silent")


class TopologyError(ValueError):
    """The topology file is wrong; the message says where."""


@dataclass(frozen=True)
class PortSpec:
    container_port: int
    name: str | None = None
    protocol: str = "TCP"
    backend: str | None = None  # echo | http | line | silent | host:port


@dataclass(frozen=True)
class ContainerSpec:
    name: str
    image: str
    ports: tuple[PortSpec, ...] = ()
    hidden_ports: tuple[PortSpec, ...] = ()  # listening, but not declared in the pod spec


@dataclass(frozen=True)
class WorkloadSpec:
    kind: str  # deployment | statefulset
    name: str
    replicas: int
    labels: dict[str, str]
    containers: tuple[ContainerSpec, ...]
    pod_states: tuple[str, ...] = ()
    service_name: str | None = None


@dataclass(frozen=True)
class PodSpec:
    name: str
    labels: dict[str, str]
    containers: tuple[ContainerSpec, ...]
    state: str = "Running"


@dataclass(frozen=True)
class ServicePortSpec:
    port: int
    target_port: int | str
    name: str | None = None
    protocol: str = "TCP"


@dataclass(frozen=True)
class ServiceSpec:
    name: str
    selector: dict[str, str] | None
    ports: tuple[ServicePortSpec, ...]
    headless: bool = False
    type: str = "ClusterIP"


@dataclass(frozen=True)
class NamespaceSpec:
    name: str
    workloads: tuple[WorkloadSpec, ...] = ()
    pods: tuple[PodSpec, ...] = ()
    services: tuple[ServiceSpec, ...] = ()


@dataclass(frozen=True)
class Topology:
    namespaces: tuple[NamespaceSpec, ...] = field(default_factory=tuple)


def demo_topology_path() -> Path:
    return Path(str(resources.files("portfwd.sandbox").joinpath("demo_topology.yaml")))


def load_topology(source: Path | dict[str, Any] | None) -> Topology:
    """Parse a topology file or dict (None: the shipped demo); raises TopologyError."""
    if source is None:
        source = demo_topology_path()
    if isinstance(source, Path):
        try:
            data = load_yaml(source.read_text(), max_nodes=TOPOLOGY_MAX_NODES)
        except OSError as exc:
            raise TopologyError(f"cannot read topology {source}: {exc.strerror}") from exc
        except YamlLimitError as exc:
            raise TopologyError(f"topology {source} is refused: {exc}") from exc
        except yaml.YAMLError as exc:
            raise TopologyError(f"topology {source} is not valid YAML: {exc}") from exc
    else:
        data = source
    if not isinstance(data, dict):
        raise TopologyError("topology: expected a mapping with a 'namespaces' list")
    return _topology(data)


def _req(d: dict[str, Any], key: str, where: str) -> Any:
    if key not in d:
        raise TopologyError(f"{where}: missing '{key}'")
    return d[key]


def _str_map(value: Any, where: str) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise TopologyError(f"{where}: expected a mapping of strings")
    return {str(k): str(v) for k, v in value.items()}


def _port(d: Any, where: str) -> PortSpec:
    if isinstance(d, int):
        d = {"containerPort": d}
    if not isinstance(d, dict):
        raise TopologyError(f"{where}: expected a mapping")
    num = _req(d, "containerPort", where)
    if not isinstance(num, int) or not 0 < num < 65536:
        raise TopologyError(f"{where}: containerPort must be 1..65535")
    proto = str(d.get("protocol", "TCP")).upper()
    if proto not in ("TCP", "UDP", "SCTP"):
        raise TopologyError(f"{where}: protocol must be TCP, UDP or SCTP")
    backend = d.get("backend")
    if backend is not None:
        backend = str(backend)
        if backend not in BUILTIN_BACKENDS:
            host, sep, port = backend.rpartition(":")
            if not sep or not host or not port.isdigit():
                raise TopologyError(
                    f"{where}: backend must be one of {', '.join(BUILTIN_BACKENDS)} or HOST:PORT"
                )
    name = d.get("name")
    return PortSpec(num, str(name) if name is not None else None, proto, backend)


def _containers(d: dict[str, Any], default_name: str, where: str) -> tuple[ContainerSpec, ...]:
    raw = d.get("containers")
    if raw is None:
        raw = [
            {
                "name": default_name,
                "image": d.get("image"),
                "ports": d.get("ports", []),
                "hiddenPorts": d.get("hiddenPorts", []),
            }
        ]
    if not isinstance(raw, list) or not raw:
        raise TopologyError(f"{where}: 'containers' must be a non-empty list")
    out = []
    for i, c in enumerate(raw):
        cw = f"{where}.containers[{i}]"
        if not isinstance(c, dict):
            raise TopologyError(f"{cw}: expected a mapping")
        name = str(c.get("name") or default_name)
        image = str(c.get("image") or f"sandbox/{name}:1.0")
        ports = c.get("ports") or []
        hidden = c.get("hiddenPorts") or []
        if not isinstance(ports, list) or not isinstance(hidden, list):
            raise TopologyError(f"{cw}: ports and hiddenPorts must be lists")
        out.append(
            ContainerSpec(
                name,
                image,
                tuple(_port(p, f"{cw}.ports[{j}]") for j, p in enumerate(ports)),
                tuple(_port(p, f"{cw}.hiddenPorts[{j}]") for j, p in enumerate(hidden)),
            )
        )
    return tuple(out)


def _state(value: Any, where: str) -> str:
    state = str(value)
    if state not in POD_STATES:
        raise TopologyError(f"{where}: state must be one of {', '.join(POD_STATES)}")
    return state


def _workload(d: Any, kind: str, where: str) -> WorkloadSpec:
    if not isinstance(d, dict):
        raise TopologyError(f"{where}: expected a mapping")
    name = str(_req(d, "name", where))
    replicas = d.get("replicas", 1)
    if not isinstance(replicas, int) or replicas < 0:
        raise TopologyError(f"{where}: replicas must be a non-negative integer")
    labels = _str_map(d.get("labels"), f"{where}.labels") or {"app": name}
    states = d.get("podStates") or []
    if not isinstance(states, list):
        raise TopologyError(f"{where}.podStates: expected a list")
    return WorkloadSpec(
        kind=kind,
        name=name,
        replicas=replicas,
        labels=labels,
        containers=_containers(d, name, where),
        pod_states=tuple(_state(s, f"{where}.podStates[{i}]") for i, s in enumerate(states)),
        service_name=str(d.get("serviceName") or name) if kind == "statefulset" else None,
    )


def _service(d: Any, where: str) -> ServiceSpec:
    if not isinstance(d, dict):
        raise TopologyError(f"{where}: expected a mapping")
    name = str(_req(d, "name", where))
    ports_raw = d.get("ports") or []
    if not isinstance(ports_raw, list):
        raise TopologyError(f"{where}.ports: expected a list")
    ports = []
    for i, p in enumerate(ports_raw):
        pw = f"{where}.ports[{i}]"
        if not isinstance(p, dict):
            raise TopologyError(f"{pw}: expected a mapping")
        port = _req(p, "port", pw)
        if not isinstance(port, int) or not 0 < port < 65536:
            raise TopologyError(f"{pw}: port must be 1..65535")
        target = p.get("targetPort", port)
        if not isinstance(target, int | str):
            raise TopologyError(f"{pw}: targetPort must be a number or a port name")
        pname = p.get("name")
        ports.append(
            ServicePortSpec(
                port,
                target,
                str(pname) if pname is not None else None,
                str(p.get("protocol", "TCP")).upper(),
            )
        )
    if len(ports) > 1 and any(p.name is None for p in ports):
        raise TopologyError(f"{where}: every port needs a name when there are several")
    selector = d.get("selector")
    return ServiceSpec(
        name=name,
        selector=_str_map(selector, f"{where}.selector") if selector is not None else None,
        ports=tuple(ports),
        headless=str(d.get("clusterIP", "")) == "None",
        type=str(d.get("type", "ClusterIP")),
    )


def _pod(d: Any, where: str) -> PodSpec:
    if not isinstance(d, dict):
        raise TopologyError(f"{where}: expected a mapping")
    name = str(_req(d, "name", where))
    return PodSpec(
        name=name,
        labels=_str_map(d.get("labels"), f"{where}.labels") or {"app": name},
        containers=_containers(d, name, where),
        state=_state(d.get("state", "Running"), f"{where}.state"),
    )


def _list(d: dict[str, Any], key: str, where: str) -> list[Any]:
    value = d.get(key) or []
    if not isinstance(value, list):
        raise TopologyError(f"{where}.{key}: expected a list")
    return value


def _topology(data: dict[str, Any]) -> Topology:
    namespaces = []
    for i, n in enumerate(_list(data, "namespaces", "topology")):
        where = f"namespaces[{i}]"
        if isinstance(n, str):
            n = {"name": n}
        if not isinstance(n, dict):
            raise TopologyError(f"{where}: expected a mapping")
        name = str(_req(n, "name", where))
        workloads = [
            _workload(w, "deployment", f"{where}.deployments[{j}]")
            for j, w in enumerate(_list(n, "deployments", where))
        ] + [
            _workload(w, "statefulset", f"{where}.statefulsets[{j}]")
            for j, w in enumerate(_list(n, "statefulsets", where))
        ]
        namespaces.append(
            NamespaceSpec(
                name=name,
                workloads=tuple(workloads),
                pods=tuple(
                    _pod(p, f"{where}.pods[{j}]") for j, p in enumerate(_list(n, "pods", where))
                ),
                services=tuple(
                    _service(s, f"{where}.services[{j}]")
                    for j, s in enumerate(_list(n, "services", where))
                ),
            )
        )
    return Topology(tuple(namespaces))
