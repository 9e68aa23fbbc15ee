"""k9s pod annotations and kftray service annotations -> forwards: pure, then a live sandbox."""

from __future__ import annotations

import asyncio
import sys
from typing import Any

import pytest
import yaml

from portfwd.engine.model import ForwardSpec
from portfwd.sandbox.cluster import SandboxCluster
from portfwd.transfer.annotations import (
    K9S_AUTO,
    K9S_PRESELECT,
    KFTRAY_CONFIGS,
    KFTRAY_ENABLED,
    from_pods,
    from_services,
    scan_cluster,
)


def _pod(
    name: str,
    annotations: dict[str, str],
    *,
    containers: list[dict[str, Any]] | None = None,
    owner: tuple[str, str] | None = None,
    labels: dict[str, str] | None = None,
) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "namespace": "demo", "annotations": annotations}
    if owner:
        meta["ownerReferences"] = [{"kind": owner[0], "name": owner[1], "controller": True}]
    if labels:
        meta["labels"] = labels
    default = [
        {"name": "app", "ports": [{"name": "http", "containerPort": 8080}]},
        {"name": "sidecar", "ports": [{"name": "metrics", "containerPort": 9102}]},
    ]
    return {"metadata": meta, "spec": {"containers": containers or default}}


def _svc(name: str, annotations: dict[str, str], ports: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "namespace": "demo", "annotations": annotations},
        "spec": {"ports": ports},
    }


def test_k9s_forms_number_name_and_local_port() -> None:
    pods = [
        _pod(
            "toolbox",
            {K9S_AUTO: "app::8080, sidecar::19102:metrics,app::18080:8080", K9S_PRESELECT: "8081"},
        )
    ]
    result = from_pods(pods, context="kind")
    assert result.skipped == []
    assert [(s.target, s.local_port, s.remote_port, s.name) for s in result.specs] == [
        ("pod/toolbox", 8080, 8080, "toolbox-8080"),
        ("pod/toolbox", 19102, "metrics", "toolbox-metrics"),
        ("pod/toolbox", 18080, 8080, "toolbox-8080-2"),
        ("pod/toolbox", 8081, 8081, "toolbox-8081"),
    ]
    assert {(s.namespace, s.context, s.addresses) for s in result.specs} == {
        ("demo", "kind", ("localhost",))
    }


def test_k9s_a_named_port_without_local_binds_its_number() -> None:
    (spec,) = from_pods([_pod("p", {K9S_AUTO: "sidecar::metrics"})]).specs
    assert (spec.local_port, spec.remote_port) == (9102, "metrics")


def test_k9s_replicas_of_a_deployment_are_one_forward_to_the_deployment() -> None:
    pods = [
        _pod(
            f"web-5d8f7c-{s}",
            {K9S_AUTO: "app::8080"},
            owner=("ReplicaSet", "web-5d8f7c"),
            labels={"pod-template-hash": "5d8f7c"},
        )
        for s in ("abcde", "fghij", "klmno")
    ]
    pods.append(_pod("db-0", {K9S_PRESELECT: "app::5432:8080"}, owner=("StatefulSet", "db")))
    result = from_pods(pods)
    assert [(s.target, s.local_port) for s in result.specs] == [
        ("deploy/web", 8080),
        ("sts/db", 5432),
    ]
    assert any("deploy/web" in str(n) for n in result.notes)


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("nosuch::8080", "no container 'nosuch' (containers: app, sidecar)"),
        ("app::grpc", "no container port named 'grpc'"),
        ("app::99999", "out of range"),
        ("app:8080", "expected container::[local:]port"),
        ("app::1:2:3", "expected container::[local:]port"),
        ("app::Bad_Name", "neither a port number nor a port name"),
    ],
)
def test_k9s_bad_values_are_skipped_with_the_reason(value: str, reason: str) -> None:
    result = from_pods([_pod("p", {K9S_AUTO: value})])
    assert result.specs == []
    (skip,) = result.skipped
    assert skip.source == "demo/pod/p"
    assert reason in skip.reason
    assert value in skip.entry


def test_pods_without_annotations_are_no_entries() -> None:
    result = from_pods([_pod("p", {"other": "x"}), {"metadata": {"name": "bare"}}])
    assert result.specs == [] and result.skipped == []


_SVC_PORTS = [
    {"name": "http", "port": 80, "targetPort": 8080, "protocol": "TCP"},
    {"name": "https", "port": 443, "targetPort": "https", "protocol": "TCP"},
    {"name": "dns", "port": 53, "targetPort": 53, "protocol": "UDP"},
]


def test_kftray_configs_alias_local_remote() -> None:
    svc = _svc(
        "web",
        {
            KFTRAY_ENABLED: "true",
            KFTRAY_CONFIGS: "site-18080-8080,secure-8443-https,bad-1,x-abc-80,y-1-9999",
        },
        _SVC_PORTS,
    )
    result = from_services([svc], context="kind")
    assert result.specs == [
        ForwardSpec(  # kftray's 8080 is the pod's port: the service port whose targetPort it is
            target="svc/web",
            remote_port=80,
            local_port=18080,
            namespace="demo",
            context="kind",
            addresses=("127.0.0.1",),
            name="site",
        ),
        ForwardSpec(
            target="svc/web",
            remote_port="https",
            local_port=8443,
            namespace="demo",
            context="kind",
            addresses=("127.0.0.1",),
            name="secure",
        ),
    ]
    reasons = [s.reason for s in result.skipped]
    assert "alias-local-remote" in reasons[0]
    assert "local port 'abc' is not a number" in reasons[1]
    assert "no port with targetPort 9999" in reasons[2]


def test_kftray_without_configs_every_tcp_port() -> None:
    result = from_services([_svc("api", {KFTRAY_ENABLED: "true"}, _SVC_PORTS)])
    assert [(s.name, s.local_port, s.remote_port) for s in result.specs] == [
        ("api-80", 8080, 80),  # local = targetPort, as kftray does
        ("api-443", 443, 443),  # a named targetPort: the service port
    ]
    (skip,) = result.skipped
    assert "not TCP" in skip.reason


def test_kftray_needs_enabled_true() -> None:
    result = from_services(
        [
            _svc("a", {KFTRAY_ENABLED: "false", KFTRAY_CONFIGS: "a-1-80"}, _SVC_PORTS),
            _svc("b", {}, _SVC_PORTS),
        ]
    )
    assert result.specs == []
    (skip,) = result.skipped  # `a` says what it wants but is not enabled; `b` is no entry
    assert skip.source == "demo/svc/a"
    assert 'is not "true"' in skip.reason


# --- against the sandbox -------------------------------------------------------------------


def _annotate(cluster: SandboxCluster, resource: str, name: str, ann: dict[str, str]) -> None:
    cluster.apply_patch(resource, "demo", name, {"metadata": {"annotations": ann}})


async def test_scan_cluster_reads_the_sandboxes_annotations(sandbox: SandboxCluster) -> None:
    for pod in sandbox.pod_names("demo", {"app": "echo"}):
        _annotate(sandbox, "pods", pod, {K9S_AUTO: "echo::19000:echo"})
    _annotate(sandbox, "pods", "toolbox", {K9S_PRESELECT: "shell, toolbox::nosuch"})
    _annotate(
        sandbox, "services", "web", {KFTRAY_ENABLED: "true", KFTRAY_CONFIGS: "www-18080-8080"}
    )
    _annotate(sandbox, "services", "api", {KFTRAY_ENABLED: "true"})

    result = await scan_cluster(kubeconfig=str(sandbox.kubeconfig_path), namespace="demo")
    got = {s.name: s for s in result.specs}
    assert sorted(got) == ["api-443", "api-9090", "echo-echo", "toolbox-shell", "www"]
    assert (got["echo-echo"].target, got["echo-echo"].local_port) == ("deploy/echo", 19000)
    assert (got["toolbox-shell"].target, got["toolbox-shell"].local_port) == ("pod/toolbox", 7000)
    assert (got["www"].target, got["www"].remote_port, got["www"].local_port) == (
        "svc/web",
        80,
        18080,
    )
    assert {s.namespace for s in result.specs} == {"demo"}
    assert len({s.context for s in result.specs}) == 1 and result.specs[0].context
    (skip,) = result.skipped
    assert skip.source == "demo/pod/toolbox"
    assert skip.reason == "no container port named 'nosuch'"

    everywhere = await scan_cluster(kubeconfig=str(sandbox.kubeconfig_path), all_namespaces=True)
    assert sorted(s.name for s in everywhere.specs) == sorted(got)


async def test_portfwd_import_from_cluster_end_to_end(sandbox: SandboxCluster) -> None:
    _annotate(sandbox, "services", "web", {KFTRAY_ENABLED: "true", KFTRAY_CONFIGS: "www-18080-80"})
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        "from portfwd.cli.transfer import import_command; import_command()",
        "--from-cluster",
        "--kubeconfig",
        str(sandbox.kubeconfig_path),
        "-n",
        "demo",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, err.decode()
    (forward,) = yaml.safe_load(out)
    assert forward["name"] == "www" and forward["ports"] == ["18080:80"]
    assert "www" in err.decode() and "svc/web" in err.decode()


async def test_an_unreachable_cluster_is_one_line_and_exit_2(tmp_path) -> None:  # type: ignore[no-untyped-def]
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        "from portfwd.cli.transfer import import_command; import_command()",
        "--from-cluster",
        "--kubeconfig",
        str(tmp_path / "missing-kubeconfig"),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 2
    assert out == b""
    lines = err.decode().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ")
