"""The installed kubectl works against the sandbox: lists, watch, delete, scale, rollout."""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil

import pytest

from portfwd.sandbox.cluster import SandboxCluster

from .helpers import call, kubectl, kubectl_base, kubectl_ok

pytestmark = pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl not installed")


async def test_kubectl_lists_everything(sandbox: SandboxCluster) -> None:
    ns = await kubectl_ok(sandbox, "get", "ns")
    for name in ("demo", "data", "shop", "default"):
        assert name in ns.split()

    pods = await kubectl_ok(sandbox, "get", "pods")
    lines = {line.split()[0]: line.split() for line in pods.splitlines()[1:]}
    assert pods.split()[:5] == ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]
    assert lines["crashy"][1:3] == ["0/1", "CrashLoopBackOff"]
    assert lines["pending-unscheduled"][1:3] == ["0/1", "Pending"]
    assert lines["stuck-creating"][1:3] == ["0/1", "ContainerCreating"]
    echo = [n for n in lines if n.startswith("echo-")]
    assert len(echo) == 2 and all(lines[n][1:3] == ["1/1", "Running"] for n in echo)
    web = [lines[n][1] for n in lines if n.startswith("web-")]
    assert sorted(web) == ["0/1", "1/1", "1/1"]

    svc = await kubectl_ok(sandbox, "get", "svc", "-n", "data")
    assert "postgres" in svc and "None" in svc  # headless
    deploy = await kubectl_ok(sandbox, "get", "deploy")
    assert any(line.split()[:2] == ["echo", "2/2"] for line in deploy.splitlines())
    assert any(line.split()[:2] == ["web", "2/3"] for line in deploy.splitlines())
    slices = await kubectl_ok(sandbox, "get", "endpointslices", "-o", "json")
    items = json.loads(slices)["items"]
    names = {i["metadata"]["labels"]["kubernetes.io/service-name"] for i in items}
    assert {"echo", "web", "api"} <= names
    assert "external-db" not in names  # no selector, no slices
    sts = await kubectl_ok(sandbox, "get", "sts", "-n", "data")
    assert "postgres" in sts


async def test_kubectl_get_pod_json_is_a_real_pod(sandbox: SandboxCluster) -> None:
    name = sandbox.pod_names("demo", {"app": "echo"})[0]
    pod = json.loads(await kubectl_ok(sandbox, "get", "pod", name, "-o", "json"))
    assert pod["status"]["phase"] == "Running"
    assert pod["status"]["podIP"].startswith("10.244.")
    ports = pod["spec"]["containers"][0]["ports"]
    assert ports == [{"name": "echo", "containerPort": 9000, "protocol": "TCP"}]
    assert pod["metadata"]["ownerReferences"][0]["kind"] == "ReplicaSet"


async def test_kubectl_watch_shows_deletion(sandbox: SandboxCluster) -> None:
    victim = sandbox.pod_names("demo", {"app": "toolbox"})[0]
    proc = await asyncio.create_subprocess_exec(
        *kubectl_base(sandbox),
        "get",
        "pods",
        "-w",
        "--output-watch-events",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None

        async def read_until(pred: object) -> str:
            while True:
                line = (await proc.stdout.readline()).decode()  # type: ignore[union-attr]
                assert line, "kubectl get -w ended early"
                if pred(line):  # type: ignore[operator]
                    return line

        await asyncio.wait_for(read_until(lambda line: victim in line), 30)
        await sandbox.delete_pod("demo", victim)
        line = await asyncio.wait_for(
            read_until(lambda line: victim in line and line.startswith("DELETED")), 30
        )
        assert line.split()[1] == victim
    finally:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        await proc.wait()


async def test_kubectl_delete_pod_gets_a_ready_replacement(sandbox: SandboxCluster) -> None:
    before = set(sandbox.pod_names("demo", {"app": "echo"}))
    victim = sorted(before)[0]
    out = await kubectl_ok(sandbox, "delete", "pod", victim)
    assert f'pod "{victim}" deleted' in out
    assert sandbox.get_object("pods", "demo", victim) is None

    def replaced() -> bool:
        names = set(sandbox.pod_names("demo", {"app": "echo"}))
        if victim in names or len(names) != 2:
            return False
        return all(
            (pod := sandbox.get_object("pods", "demo", n)) is not None
            and pod["status"]["phase"] == "Running"
            and all(c["ready"] for c in pod["status"]["containerStatuses"])
            for n in names
        )

    assert await sandbox.wait_for(replaced, 30)
    new = set(sandbox.pod_names("demo", {"app": "echo"})) - before
    assert len(new) == 1
    (name,) = new
    assert name.startswith(victim.rsplit("-", 1)[0] + "-")  # same ReplicaSet hash
    out = await kubectl_ok(sandbox, "get", "pod", name)
    assert "1/1" in out and "Running" in out


async def test_kubectl_scale(sandbox: SandboxCluster) -> None:
    out = await kubectl_ok(sandbox, "scale", "deploy/echo", "--replicas=3")
    assert "deployment.apps/echo scaled" in out
    assert await sandbox.wait_for(lambda: len(sandbox.pod_names("demo", {"app": "echo"})) == 3)
    await kubectl_ok(sandbox, "rollout", "status", "deploy/echo", "--timeout=30s")
    deploy = await kubectl_ok(sandbox, "get", "deploy", "echo")
    assert deploy.splitlines()[1].split()[:2] == ["echo", "3/3"]
    await kubectl_ok(sandbox, "scale", "deploy/echo", "--replicas=1")
    assert await sandbox.wait_for(lambda: len(sandbox.pod_names("demo", {"app": "echo"})) == 1)


async def test_kubectl_rollout_restart_replaces_every_pod(sandbox: SandboxCluster) -> None:
    before = set(sandbox.pod_names("demo", {"app": "echo"}))
    out = await kubectl_ok(sandbox, "rollout", "restart", "deploy/echo")
    assert "deployment.apps/echo restarted" in out
    status = await kubectl_ok(sandbox, "rollout", "status", "deploy/echo", "--timeout=30s")
    assert "successfully rolled out" in status
    after = set(sandbox.pod_names("demo", {"app": "echo"}))
    assert len(after) == 2 and not (after & before)
    dep = sandbox.get_object("deployments", "demo", "echo")
    assert dep is not None
    assert "kubectl.kubernetes.io/restartedAt" in dep["spec"]["template"]["metadata"]["annotations"]
    assert dep["status"]["updatedReplicas"] == dep["status"]["readyReplicas"] == 2
    rs = json.loads(await kubectl_ok(sandbox, "get", "rs", "-l", "app=echo", "-o", "json"))
    replicas = sorted(r["spec"]["replicas"] for r in rs["items"])
    assert replicas == [0, 2]


async def test_kubectl_rollout_restart_statefulset(sandbox: SandboxCluster) -> None:
    before = {
        n: sandbox.get_object("pods", "data", n)["metadata"]["uid"]  # type: ignore[index]
        for n in sandbox.pod_names("data", {"app": "postgres"})
    }
    await kubectl_ok(sandbox, "rollout", "restart", "sts/postgres", "-n", "data")
    await kubectl_ok(sandbox, "rollout", "status", "sts/postgres", "-n", "data", "--timeout=30s")
    after = {
        n: sandbox.get_object("pods", "data", n)["metadata"]["uid"]  # type: ignore[index]
        for n in sandbox.pod_names("data", {"app": "postgres"})
    }
    assert sorted(after) == ["postgres-0", "postgres-1"]
    assert all(after[n] != before[n] for n in after)


async def test_kubectl_viewer_cannot_delete(sandbox: SandboxCluster) -> None:
    rc, _, err = await kubectl(sandbox, "delete", "pod", "toolbox", context="sandbox-viewer")
    assert rc != 0
    assert (
        'pods "toolbox" is forbidden: User "viewer" cannot delete resource "pods" in API group "" '
        'in the namespace "demo"' in err
    )


async def test_kubectl_with_client_certificate(sandbox: SandboxCluster) -> None:
    out = await kubectl_ok(sandbox, "get", "pods", "-l", "app=echo", context="sandbox-cert")
    assert len(out.splitlines()) == 3
    rc, _, err = await kubectl(sandbox, "get", "ns", context="sandbox-limited")
    assert rc != 0
    assert 'cannot list resource "namespaces" in API group "" at the cluster scope' in err


async def test_kubectl_set_image_and_label(sandbox: SandboxCluster) -> None:
    """Strategic merge keeps the other container fields (ports) and rolls the pods."""
    await kubectl_ok(sandbox, "set", "image", "deploy/echo", "echo=sandbox/echo:2.0")
    await kubectl_ok(sandbox, "rollout", "status", "deploy/echo", "--timeout=30s")
    for name in sandbox.pod_names("demo", {"app": "echo"}):
        pod = sandbox.get_object("pods", "demo", name)
        assert pod is not None
        (container,) = pod["spec"]["containers"]
        assert container["image"] == "sandbox/echo:2.0"
        assert container["ports"] == [{"name": "echo", "containerPort": 9000, "protocol": "TCP"}]
    await kubectl_ok(sandbox, "label", "pod", "toolbox", "tier=tools")
    out = await kubectl_ok(sandbox, "get", "pods", "-l", "tier=tools", "-o", "name")
    assert out.split() == ["pod/toolbox"]


async def test_kubectl_delete_service_and_deployment(sandbox: SandboxCluster) -> None:
    await kubectl_ok(sandbox, "delete", "svc", "echo")
    out = await kubectl_ok(
        sandbox, "get", "endpointslices", "-l", "kubernetes.io/service-name=echo", "-o", "name"
    )
    assert out.strip() == ""
    await kubectl_ok(sandbox, "delete", "deploy", "web")
    assert await sandbox.wait_for(lambda: not sandbox.pod_names("demo", {"app": "web"}))
    assert await sandbox.wait_for(
        lambda: all(
            not name.startswith("web-")
            for name in (p["metadata"]["name"] for p in sandbox.store.list("pods", "demo"))
        )
    )
    rc, _, err = await kubectl(sandbox, "get", "deploy", "web")
    assert rc != 0 and 'deployments.apps "web" not found' in err


@pytest.mark.parametrize(
    ("context", "args", "answer"),
    [
        ("sandbox", ["get", "pods", "--subresource=portforward"], "yes"),
        ("sandbox-viewer", ["get", "pods", "--subresource=portforward"], "no"),
        ("sandbox-viewer", ["list", "pods"], "yes"),
        ("sandbox-limited", ["list", "namespaces"], "no"),
        ("sandbox-limited", ["create", "pods/portforward"], "yes"),
        ("sandbox-nobody", ["list", "pods"], "no"),
    ],
)
async def test_kubectl_auth_can_i(
    sandbox: SandboxCluster, context: str, args: list[str], answer: str
) -> None:
    """`kubectl auth can-i` (a protobuf SelfSubjectAccessReview) tells the fixed RBAC."""
    _, out, _ = await kubectl(sandbox, "auth", "can-i", *args, context=context)
    assert out.strip() == answer


async def test_kubectl_logs(sandbox: SandboxCluster) -> None:
    out = await kubectl_ok(sandbox, "logs", "crashy")
    assert "listening on :8080/TCP (http)" in out
    rc, _, err = await kubectl(sandbox, "logs", "stuck-creating")
    assert rc != 0
    assert (
        'container "stuck-creating" in pod "stuck-creating" is waiting to start: '
        "ContainerCreating" in err
    )
    out = await kubectl_ok(sandbox, "logs", "crashy", context="sandbox-viewer")
    assert "fatal:" in out
    status, body = await call(
        sandbox, "GET", "/api/v1/namespaces/demo/pods/crashy/log", sandbox.tokens.nobody
    )
    assert status == 403
    assert 'cannot get resource "pods/log"' in body["message"]
