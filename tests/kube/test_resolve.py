"""Resolution rules on in-memory objects: every branch and every error text."""

from __future__ import annotations

from typing import Any

import pytest

from portfwd.errors import NoReadyPod, ResolveError
from portfwd.kube.errors import Forbidden, NotFound
from portfwd.kube.objects import EndpointSlice, LabelSelector, Namespace, Pod, Service, Workload
from portfwd.kube.resolve import Resolution, local_port_for, resolve
from portfwd.kube.targets import PortMapping, Target, parse_port_mapping, parse_target

NS = "demo"


def pod(
    name: str,
    *,
    labels: dict[str, str] | None = None,
    ports: list[dict[str, Any]] | None = None,
    phase: str = "Running",
    ready: bool = True,
    created: str = "2026-11-24T00:00:00Z",
    waiting: str = "",
    deleting: bool = False,
) -> dict[str, Any]:
    meta: dict[str, Any] = {
        "name": name,
        "namespace": NS,
        "uid": f"uid-{name}",
        "labels": labels or {"app": "api"},
        "creationTimestamp": created,
    }
    if deleting:
        meta["deletionTimestamp"] = "2026-11-24T01:00:00Z"
    state: dict[str, Any] = (
        {"waiting": {"reason": waiting}} if waiting else {"running": {"startedAt": created}}
    )
    return {
        "metadata": meta,
        "spec": {"nodeName": "node-1", "containers": [{"name": "main", "ports": ports or []}]},
        "status": {
            "phase": phase,
            "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
            "containerStatuses": [{"name": "main", "ready": ready, "state": state}],
        },
    }


def service(
    name: str,
    ports: list[dict[str, Any]],
    selector: dict[str, str] | None = None,
    *,
    svc_type: str = "ClusterIP",
) -> dict[str, Any]:
    spec: dict[str, Any] = {"type": svc_type, "clusterIP": "10.96.0.10", "ports": ports}
    if selector is not None:
        spec["selector"] = selector
    return {"metadata": {"name": name, "namespace": NS}, "spec": spec}


def eps(service_name: str, endpoints: list[tuple[str, bool, bool]]) -> dict[str, Any]:
    """An EndpointSlice; endpoints are (pod name, ready, terminating)."""
    return {
        "metadata": {
            "name": f"{service_name}-abc",
            "namespace": NS,
            "labels": {"kubernetes.io/service-name": service_name},
        },
        "addressType": "IPv4",
        "endpoints": [
            {
                "addresses": [f"10.244.0.{i + 10}"],
                "conditions": {"ready": ready, "serving": ready, "terminating": term},
                "targetRef": {"kind": "Pod", "name": name, "namespace": NS},
            }
            for i, (name, ready, term) in enumerate(endpoints)
        ],
        "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
    }


def workload(kind: str, name: str, match: dict[str, str], replicas: int = 2) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "namespace": NS},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": match},
            "template": {"spec": {"containers": [{"name": "main"}]}},
        },
    }


def not_found(resource: str, name: str, ns: str | None = NS) -> NotFound:
    text = f'{resource} "{name}" not found' + (f' in namespace "{ns}"' if ns else "")
    return NotFound(text, status=404, reason="NotFound")


class FakeClient:
    """The methods resolve() uses, over plain dicts; records calls for assertions."""

    def __init__(self) -> None:
        self.namespaces = {NS}
        self.pods: dict[str, dict[str, Any]] = {}
        self.services: dict[str, dict[str, Any]] = {}
        self.slices: list[dict[str, Any]] = []
        self.workloads: dict[tuple[str, str], dict[str, Any]] = {}
        self.slices_forbidden = False
        self.calls: list[str] = []

    def add_pods(self, *pods: dict[str, Any]) -> None:
        for p in pods:
            self.pods[p["metadata"]["name"]] = p

    async def get_namespace(self, name: str) -> Namespace:
        self.calls.append(f"get namespace {name}")
        if name not in self.namespaces:
            raise not_found("namespaces", name, None)
        return Namespace.from_dict({"metadata": {"name": name}})

    async def get_pod(self, ns: str, name: str) -> Pod:
        self.calls.append(f"get pod {name}")
        if ns not in self.namespaces or name not in self.pods:
            raise not_found("pods", name, ns)
        return Pod.from_dict(self.pods[name])

    async def list_pods(self, ns: str, label_selector: str | None = None) -> list[Pod]:
        self.calls.append(f"list pods {label_selector}")
        # The fake ignores the selector's text: resolve() must filter with matches() itself.
        return [Pod.from_dict(p) for p in self.pods.values()] if ns in self.namespaces else []

    async def get_service(self, ns: str, name: str) -> Service:
        self.calls.append(f"get service {name}")
        if ns not in self.namespaces or name not in self.services:
            raise not_found("services", name, ns)
        return Service.from_dict(self.services[name])

    async def list_endpointslices(self, ns: str, service: str | None = None) -> list[EndpointSlice]:
        self.calls.append(f"list endpointslices {service}")
        if self.slices_forbidden:
            raise Forbidden("forbidden", status=403, reason="Forbidden")
        return [
            EndpointSlice.from_dict(s)
            for s in self.slices
            if service is None or s["metadata"]["labels"]["kubernetes.io/service-name"] == service
        ]

    async def get_workload(self, kind: str, ns: str, name: str) -> Workload:
        self.calls.append(f"get {kind} {name}")
        if ns not in self.namespaces or (kind, name) not in self.workloads:
            raise not_found(f"{kind}s.apps", name, ns)
        return Workload.from_dict(kind, self.workloads[(kind, name)])


async def run(client: FakeClient, target: str, remote: int | str, ns: str = NS) -> Resolution:
    return await resolve(client, ns, parse_target(target), remote)


async def fails(client: FakeClient, target: str, remote: int | str, ns: str = NS) -> str:
    with pytest.raises((ResolveError, NotFound)) as err:
        await run(client, target, remote, ns)
    return str(err.value)


HTTP = {"name": "http", "containerPort": 8080, "protocol": "TCP"}
METRICS = {"name": "metrics", "containerPort": 9090}
DNS_UDP = {"name": "dns", "containerPort": 53, "protocol": "UDP"}


# --- pods ----------------------------------------------------------------------------------


async def test_pod_numeric_port_declared() -> None:
    c = FakeClient()
    c.add_pods(pod("web", ports=[HTTP]))
    r = await run(c, "pod/web", 8080)
    assert (r.pod.name, r.container_port, r.port_name, r.protocol) == ("web", 8080, "http", "TCP")
    assert r.decisions == ("pod/web port 8080 (http)",)
    assert r.local_port_default == 8080


async def test_pod_undeclared_numeric_port_is_allowed() -> None:
    c = FakeClient()
    c.add_pods(pod("web", ports=[HTTP]))
    r = await run(c, "web", 5432)
    assert (r.container_port, r.port_name) == (5432, "")
    assert "port 5432 is not declared in the pod spec; forwarded as-is" in r.decisions


async def test_pod_named_port() -> None:
    c = FakeClient()
    c.add_pods(pod("web", ports=[HTTP, METRICS]))
    r = await run(c, "pod/web", "metrics")
    assert (r.container_port, r.port_name) == (9090, "metrics")
    assert r.decisions == ("pod/web port 9090 (metrics)", "port metrics -> 9090")
    assert local_port_for(parse_port_mapping("metrics"), r) == 9090
    assert local_port_for(parse_port_mapping("7000:metrics"), r) == 7000
    assert local_port_for(parse_port_mapping(":metrics"), r) == 0


async def test_pod_unknown_named_port_lists_names() -> None:
    c = FakeClient()
    c.add_pods(pod("web", ports=[HTTP, METRICS, {"containerPort": 7000}]))
    assert await fails(c, "pod/web", "https") == (
        'pod web has no container port named "https"; its named ports: http (8080), metrics (9090)'
    )


async def test_pod_named_port_when_none_declared() -> None:
    c = FakeClient()
    c.add_pods(pod("web"))
    assert await fails(c, "pod/web", "http") == (
        'pod web has no container port named "http"; it declares no named ports'
    )


async def test_pod_not_running() -> None:
    c = FakeClient()
    c.add_pods(pod("web", phase="Pending", ready=False, waiting="ContainerCreating"))
    assert await fails(c, "pod/web", 80) == (
        "pod web is not running (phase Pending: ContainerCreating)"
    )


async def test_pod_running_not_ready_is_allowed_with_a_note() -> None:
    c = FakeClient()
    c.add_pods(pod("web", ready=False))
    r = await run(c, "pod/web", 80)
    assert "pod web is Running but not Ready (container main not ready)" in r.decisions


async def test_pod_udp_port_refused() -> None:
    c = FakeClient()
    c.add_pods(pod("dns", ports=[DNS_UDP]))
    assert await fails(c, "pod/dns", 53) == (
        "port 53 of pod/dns is UDP; port-forward supports TCP only"
    )
    assert await fails(c, "pod/dns", "dns") == (
        'port "dns" (53) of pod/dns is UDP; port-forward supports TCP only'
    )


async def test_pod_udp_port_with_tcp_twin_allowed() -> None:
    c = FakeClient()
    c.add_pods(pod("dns", ports=[DNS_UDP, {"name": "dns-tcp", "containerPort": 53}]))
    assert (await run(c, "pod/dns", 53)).container_port == 53


async def test_missing_pod() -> None:
    c = FakeClient()
    assert await fails(c, "pod/nope", 80) == 'pods "nope" not found in namespace "demo"'
    assert c.calls == ["get pod nope", "get namespace demo"]


async def test_missing_namespace() -> None:
    c = FakeClient()
    c.add_pods(pod("web"))
    assert await fails(c, "pod/web", 80, ns="nope") == (
        'namespace "nope" not found; check -n/--namespace or the namespace of the context'
    )


async def test_namespace_check_forbidden_keeps_original_404() -> None:
    c = FakeClient()

    async def forbidden(name: str) -> Namespace:
        raise Forbidden("no", status=403)

    c.get_namespace = forbidden  # type: ignore[method-assign]
    assert await fails(c, "pod/nope", 80) == 'pods "nope" not found in namespace "demo"'


# --- services ------------------------------------------------------------------------------


def echo_cluster(*, first_ready: bool = False) -> FakeClient:
    """svc/echo port 80 (http) -> targetPort "echo"; pods echo-a (oldest) .. echo-c."""
    c = FakeClient()
    echo_port = {"name": "echo", "containerPort": 9000}
    c.add_pods(
        pod(
            "echo-a",
            labels={"app": "echo"},
            ports=[echo_port],
            ready=first_ready,
            created="2026-11-24T00:00:01Z",
        ),
        pod("echo-b", labels={"app": "echo"}, ports=[echo_port], created="2026-11-24T00:00:03Z"),
        pod("echo-c", labels={"app": "echo"}, ports=[echo_port], created="2026-11-24T00:00:02Z"),
        pod("other", labels={"app": "other"}, ports=[echo_port], created="2026-11-24T00:00:00Z"),
    )
    c.services["echo"] = service(
        "echo",
        [
            {"name": "http", "port": 80, "targetPort": "echo", "protocol": "TCP"},
            {"name": "admin", "port": 81, "targetPort": 9001},
            {"name": "dns", "port": 53, "protocol": "UDP"},
        ],
        {"app": "echo"},
    )
    c.slices.append(
        eps(
            "echo",
            [("echo-a", first_ready, False), ("echo-b", True, False), ("echo-c", True, False)],
        )
    )
    return c


async def test_service_named_target_port_to_oldest_ready_endpoint() -> None:
    c = echo_cluster(first_ready=False)
    r = await run(c, "svc/echo", 80)
    # echo-a is the oldest but not a Ready endpoint; echo-c is the oldest Ready one.
    assert (r.pod.name, r.container_port, r.port_name) == ("echo-c", 9000, "echo")
    assert r.service_port == 80 and r.local_port_default == 80
    assert r.decisions == (
        "svc/echo port 80 (http) -> targetPort echo -> pod echo-c port 9000",
        "chose pod echo-c: the oldest of 2 Ready endpoints (3 in total)",
        "not Ready: echo-a: container main not ready",
    )


async def test_service_all_ready_picks_oldest() -> None:
    c = echo_cluster(first_ready=True)
    assert (await run(c, "service/echo", 80)).pod.name == "echo-a"


async def test_service_port_by_name() -> None:
    c = echo_cluster(first_ready=True)
    r = await run(c, "svc/echo", "http")
    assert (r.container_port, r.service_port) == (9000, 80)
    assert local_port_for(parse_port_mapping("http"), r) == 80  # kubectl: the service port
    assert local_port_for(parse_port_mapping("8443:http"), r) == 8443


async def test_service_numeric_target_port() -> None:
    c = echo_cluster(first_ready=True)
    r = await run(c, "svc/echo", 81)
    assert (r.container_port, r.port_name) == (9001, "admin")
    assert r.decisions[0] == "svc/echo port 81 (admin) -> targetPort 9001 -> pod echo-a port 9001"


async def test_service_target_port_defaults_to_port() -> None:
    c = FakeClient()
    c.add_pods(pod("api-1", ports=[HTTP]))
    c.services["api"] = service("api", [{"port": 8080}], {"app": "api"})
    c.slices.append(eps("api", [("api-1", True, False)]))
    r = await run(c, "svc/api", 8080)
    assert (r.container_port, r.port_name) == (8080, "http")
    assert r.decisions[0] == "svc/api port 8080 -> pod api-1 port 8080"


async def test_service_port_not_exposed() -> None:
    c = echo_cluster()
    assert await fails(c, "svc/echo", 8080) == (
        "svc/echo does not expose port 8080; its ports: 80/TCP (http), 81/TCP (admin), 53/UDP (dns)"
    )
    assert await fails(c, "svc/echo", "https") == (
        'svc/echo has no port named "https"; its ports: 80/TCP (http), 81/TCP (admin), 53/UDP (dns)'
    )


async def test_service_udp_refused() -> None:
    c = echo_cluster()
    assert await fails(c, "svc/echo", 53) == (
        "port 53 of svc/echo is UDP; port-forward supports TCP only"
    )
    assert await fails(c, "svc/echo", "dns") == (
        'port "dns" (53) of svc/echo is UDP; port-forward supports TCP only'
    )


async def test_service_udp_with_tcp_twin_uses_tcp() -> None:
    c = FakeClient()
    c.add_pods(pod("dns-1", labels={"app": "dns"}, ports=[DNS_UDP, {"containerPort": 53}]))
    c.services["dns"] = service(
        "dns",
        [{"name": "dns", "port": 53, "protocol": "UDP"}, {"name": "dns-tcp", "port": 53}],
        {"app": "dns"},
    )
    c.slices.append(eps("dns", [("dns-1", True, False)]))
    r = await run(c, "svc/dns", "dns")
    assert r.container_port == 53


async def test_service_without_selector() -> None:
    c = FakeClient()
    c.services["ext"] = service("ext", [{"port": 5432}])
    assert await fails(c, "svc/ext", 5432) == (
        "svc/ext has no selector, so no pods back it; forward to a pod instead (pod/NAME)"
    )


async def test_external_name_service() -> None:
    c = FakeClient()
    c.services["ext"] = service("ext", [{"port": 80}], svc_type="ExternalName")
    assert await fails(c, "svc/ext", 80) == (
        "svc/ext is an ExternalName service (a DNS alias, no pods); port-forward needs pods"
    )


async def test_service_no_ready_pod_explains_each() -> None:
    c = FakeClient()
    c.add_pods(
        pod("api-1", ready=False),
        pod("api-2", phase="Pending", ready=False, waiting="ContainerCreating"),
        pod("api-3", deleting=True),
        pod("api-4", ready=False, waiting="CrashLoopBackOff"),
    )
    c.pods["api-1"]["status"]["containerStatuses"][0]["ready"] = True  # only the probe fails
    c.services["api"] = service(
        "api", [{"name": "https", "port": 443, "targetPort": 8443}], {"app": "api"}
    )
    c.slices.append(
        eps("api", [("api-1", False, False), ("api-3", False, True), ("api-4", False, False)])
    )
    assert await fails(c, "svc/api", 443) == (
        "svc/api has no Ready pod: 4 pods match its selector, none Ready (api-1: readiness probe"
        " failing; api-2: phase Pending (ContainerCreating); api-3: terminating; ...)"
    )


async def test_service_no_pods_at_all() -> None:
    c = FakeClient()
    c.services["api"] = service("api", [{"port": 443}], {"app": "api", "tier": "web"})
    assert await fails(c, "svc/api", 443) == (
        "svc/api has no Ready pod: no pods match its selector app=api,tier=web"
    )


async def test_service_ready_pod_not_yet_endpoint() -> None:
    c = FakeClient()
    c.add_pods(pod("api-1"))
    c.services["api"] = service("api", [{"port": 443}], {"app": "api"})
    c.slices.append(eps("api", [("api-1", False, False)]))
    assert await fails(c, "svc/api", 443) == (
        "svc/api has no Ready pod: 1 pod matches its selector, none Ready"
        " (api-1: Ready, but not yet a Ready endpoint of the service)"
    )


async def test_service_named_target_port_missing_in_pods() -> None:
    c = FakeClient()
    c.add_pods(pod("api-1", ports=[HTTP]))
    c.services["api"] = service("api", [{"port": 443, "targetPort": "https"}], {"app": "api"})
    c.slices.append(eps("api", [("api-1", True, False)]))
    assert await fails(c, "svc/api", 443) == (
        'svc/api port 443 has targetPort "https", but no Ready pod declares a container port of'
        ' that name (pod api-1 has no container port named "https"; its named ports: http (8080))'
    )


async def test_service_without_slices_falls_back_to_pod_readiness() -> None:
    c = FakeClient()
    c.add_pods(pod("api-1", ready=False), pod("api-2"))
    c.services["api"] = service("api", [{"port": 443}], {"app": "api"})
    r = await run(c, "svc/api", 443)
    assert r.pod.name == "api-2"
    assert "svc/api has no EndpointSlices yet; chose by pod readiness" in r.decisions


async def test_service_slices_forbidden_falls_back_to_pod_readiness() -> None:
    c = echo_cluster(first_ready=False)
    c.slices_forbidden = True
    r = await run(c, "svc/echo", 80)
    assert r.pod.name == "echo-c"
    assert "no permission to list EndpointSlices; chose by pod readiness" in r.decisions


async def test_missing_service() -> None:
    c = FakeClient()
    assert await fails(c, "svc/nope", 80) == 'services "nope" not found in namespace "demo"'
    assert await fails(c, "svc/nope", 80, ns="gone") == (
        'namespace "gone" not found; check -n/--namespace or the namespace of the context'
    )


# --- workloads -----------------------------------------------------------------------------


def echo_deploy(kind: str = "deployment", name: str = "echo") -> FakeClient:
    c = echo_cluster(first_ready=False)
    c.workloads[(kind, name)] = workload(kind, name, {"app": "echo"})
    return c


async def test_deployment_ready_pod() -> None:
    c = echo_deploy()
    r = await run(c, "deploy/echo", 9000)
    assert (r.pod.name, r.container_port, r.port_name) == ("echo-c", 9000, "echo")
    assert r.decisions == (
        "deploy/echo -> pod echo-c port 9000 (echo)",
        "chose pod echo-c: the oldest of 2 Ready pods (3 match the selector app=echo)",
        "not Ready: echo-a: container main not ready",
    )


async def test_statefulset_named_port() -> None:
    c = echo_deploy("statefulset", "db")
    r = await run(c, "sts/db", "echo")
    assert (r.pod.name, r.container_port, r.local_port_default) == ("echo-c", 9000, 9000)


async def test_workload_named_port_missing() -> None:
    c = echo_deploy()
    assert await fails(c, "deploy/echo", "https") == (
        'pod echo-c has no container port named "https"; its named ports: echo (9000)'
    )


async def test_workload_no_ready_pod() -> None:
    c = FakeClient()
    c.add_pods(pod("web-1", ready=False, labels={"app": "web"}))
    c.workloads[("deployment", "web")] = workload("deployment", "web", {"app": "web"})
    assert await fails(c, "deploy/web", 80) == (
        "deploy/web has no Ready pod: 1 pod matches its selector, none Ready"
        " (web-1: container main not ready)"
    )


async def test_workload_scaled_to_zero() -> None:
    c = FakeClient()
    c.workloads[("statefulset", "db")] = workload("statefulset", "db", {"app": "db"}, replicas=0)
    assert await fails(c, "sts/db", 5432) == (
        "sts/db has no Ready pod: no pods match its selector app=db (it is scaled to 0 replicas)"
    )


async def test_workload_empty_selector() -> None:
    c = FakeClient()
    c.workloads[("deployment", "x")] = workload("deployment", "x", {})
    assert await fails(c, "deploy/x", 80) == (
        "deploy/x has an empty selector; forward to a pod instead (pod/NAME)"
    )


async def test_missing_deployment() -> None:
    c = FakeClient()
    assert await fails(c, "deploy/nope", 80) == (
        'deployments.apps "nope" not found in namespace "demo"'
    )


def test_label_selector_expressions_are_honoured() -> None:
    sel = LabelSelector.from_dict(
        {"matchExpressions": [{"key": "tier", "operator": "In", "values": ["web"]}]}
    )
    assert sel.to_query() == "tier in (web)"
    assert sel.matches({"tier": "web"}) and not sel.matches({"tier": "db"})


def test_port_mapping_default() -> None:
    assert PortMapping(0, "x", local_from_remote=True) == parse_port_mapping("x")
    assert Target("pod", "a") == parse_target("a")


async def test_pod_not_scheduled() -> None:
    c = FakeClient()
    unscheduled = pod("batch", phase="Pending", ready=False)
    unscheduled["spec"].pop("nodeName")
    unscheduled["status"].pop("containerStatuses")
    c.add_pods(unscheduled)
    assert await fails(c, "pod/batch", 80) == (
        "pod batch is not running (phase Pending: not scheduled to a node yet)"
    )


async def test_pod_failed_with_reason() -> None:
    c = FakeClient()
    evicted = pod("old", phase="Failed", ready=False)
    evicted["status"]["reason"] = "Evicted"
    evicted["status"].pop("containerStatuses")
    c.add_pods(evicted)
    assert await fails(c, "pod/old", 80) == "pod old is not running (phase Failed: Evicted)"


async def test_numeric_string_port_is_a_number() -> None:
    c = FakeClient()
    c.add_pods(pod("web", ports=[HTTP]))
    r = await resolve(c, NS, parse_target("web"), "8080")
    assert (r.container_port, r.port_name) == (8080, "http")


async def test_out_of_range_port_rejected() -> None:
    from portfwd.errors import InputError

    c = FakeClient()
    with pytest.raises(InputError) as err:
        await resolve(c, NS, parse_target("web"), 0)
    assert str(err.value) == "invalid remote port 0: ports are 1..65535"


# --- which failures are transient (NoReadyPod) and which need the user (ResolveError) ------


def _unready_api(c: FakeClient) -> None:
    c.add_pods(pod("api-1", ready=False), pod("api-2", phase="Pending", ready=False))
    c.services["api"] = service("api", [{"port": 443}], {"app": "api"})
    c.workloads[("deployment", "api")] = workload("deployment", "api", {"app": "api"})


def _crashing_pod(c: FakeClient) -> None:
    c.add_pods(pod("web", phase="Pending", ready=False, waiting="CrashLoopBackOff"))


def _creating_pod(c: FakeClient) -> None:
    c.add_pods(pod("web", phase="Pending", ready=False, waiting="ContainerCreating"))


def _evicted_pod(c: FakeClient) -> None:
    c.add_pods(pod("web", phase="Failed", ready=False))


def _scaled_to_zero(c: FakeClient) -> None:
    c.workloads[("statefulset", "db")] = workload("statefulset", "db", {"app": "db"}, replicas=0)


def _no_endpoint_yet(c: FakeClient) -> None:
    c.add_pods(pod("api-1"))
    c.services["api"] = service("api", [{"port": 443}], {"app": "api"})
    c.slices.append(eps("api", [("api-1", False, False)]))


def _service_without_pods(c: FakeClient) -> None:
    c.services["api"] = service("api", [{"port": 443}], {"app": "api"})


def _pods_without_named_target_port(c: FakeClient) -> None:
    c.add_pods(pod("api-1", ports=[HTTP]))
    c.services["api"] = service("api", [{"port": 443, "targetPort": "https"}], {"app": "api"})


def echo_deploy_into(c: FakeClient) -> None:
    echo = echo_deploy()
    c.pods.update(echo.pods)
    c.services.update(echo.services)
    c.slices.extend(echo.slices)
    c.workloads.update(echo.workloads)


def _selectorless(c: FakeClient) -> None:
    c.services["api"] = service("api", [{"port": 443}])
    c.services["ext"] = service("ext", [{"port": 443}], svc_type="ExternalName")
    c.workloads[("deployment", "x")] = workload("deployment", "x", {})


@pytest.mark.parametrize(
    ("setup", "target", "remote", "transient"),
    [
        # transient: may heal by itself, the engine retries
        (_creating_pod, "pod/web", 80, True),
        (_crashing_pod, "pod/web", 80, True),
        (_evicted_pod, "pod/web", 80, True),
        (_unready_api, "svc/api", 443, True),
        (_unready_api, "deploy/api", 443, True),
        (_no_endpoint_yet, "svc/api", 443, True),
        (_service_without_pods, "svc/api", 443, True),
        (_scaled_to_zero, "sts/db", 5432, True),
        # permanent: the user must change something
        (_crashing_pod, "pod/web", "http", True),  # not Running is checked before the port
        (lambda c: c.add_pods(pod("web")), "pod/web", "http", False),  # no named port
        (lambda c: c.add_pods(pod("dns", ports=[DNS_UDP])), "pod/dns", 53, False),  # UDP
        (lambda c: c.services.update(echo=echo_cluster().services["echo"]), "svc/echo", 53, False),
        (_unready_api, "svc/api", 80, False),  # no such service port
        (_unready_api, "svc/api", "https", False),  # no such port name
        (_selectorless, "svc/api", 443, False),
        (_selectorless, "svc/ext", 443, False),
        (_selectorless, "deploy/x", 80, False),
        (_pods_without_named_target_port, "svc/api", 443, False),
        (echo_deploy_into, "deploy/echo", "https", False),  # no named port
    ],
)
async def test_transient_failures_are_no_ready_pod(
    setup: Any, target: str, remote: int | str, transient: bool
) -> None:
    c = FakeClient()
    setup(c)
    with pytest.raises(ResolveError) as err:
        await run(c, target, remote)
    assert isinstance(err.value, NoReadyPod) is transient, str(err.value)
