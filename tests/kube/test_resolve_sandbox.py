"""Resolution against the sandbox cluster (demo topology): the same rules over real HTTP."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from portfwd.errors import PortfwdError
from portfwd.kube.client import KubeClient
from portfwd.kube.config import load_connection
from portfwd.kube.resolve import Resolution, local_port_for, resolve
from portfwd.kube.targets import parse_port_mapping, parse_target
from portfwd.sandbox.cluster import SandboxCluster


@pytest_asyncio.fixture
async def client(sandbox: SandboxCluster) -> AsyncIterator[KubeClient]:
    conn = await asyncio.to_thread(load_connection, str(sandbox.kubeconfig_path))
    async with KubeClient(conn) as kube:
        yield kube


async def run(client: KubeClient, target: str, port: str, ns: str = "demo") -> Resolution:
    mapping = parse_port_mapping(port)
    return await resolve(client, ns, parse_target(target), mapping.remote)


async def error(client: KubeClient, target: str, port: str, ns: str = "demo") -> str:
    with pytest.raises(PortfwdError) as err:
        await run(client, target, port, ns)
    return str(err.value)


async def test_service_named_target_port(sandbox: SandboxCluster, client: KubeClient) -> None:
    r = await run(client, "svc/echo", "80")
    assert r.pod.name in sandbox.pod_names("demo", {"app": "echo"})
    assert (r.container_port, r.port_name, r.service_port) == (9000, "echo", 80)
    assert r.pod.ready
    assert (
        r.decisions[0] == f"svc/echo port 80 (tcp) -> targetPort echo -> pod {r.pod.name} port 9000"
    )


async def test_service_skips_a_pod_that_turns_unready(
    sandbox: SandboxCluster, client: KubeClient
) -> None:
    first = await run(client, "svc/echo", "80")
    await sandbox.set_pod_ready("demo", first.pod.name, False)
    second = await run(client, "svc/echo", "80")
    assert second.pod.name != first.pod.name
    assert f"not Ready: {first.pod.name}: " in second.decisions[-1]
    await sandbox.set_pod_ready("demo", second.pod.name, False)
    message = await error(client, "svc/echo", "80")
    assert message.startswith("svc/echo has no Ready pod: 2 pods match its selector, none Ready (")


async def test_service_never_picks_the_not_ready_replica(
    sandbox: SandboxCluster, client: KubeClient
) -> None:
    pods = {p.name: p for p in await client.list_pods("demo", "app=web")}
    r = await run(client, "svc/web", "80")
    assert r.container_port == 8080 and r.pod.ready
    not_ready = [name for name, p in pods.items() if not p.ready]
    assert len(not_ready) == 1 and r.pod.name != not_ready[0]


async def test_service_named_port_8443_https(client: KubeClient) -> None:
    r = await run(client, "svc/api", "8443:https")
    assert (r.container_port, r.port_name, r.service_port) == (8443, "https", 443)
    assert local_port_for(parse_port_mapping("8443:https"), r) == 8443
    assert local_port_for(parse_port_mapping("https"), r) == 443  # kubectl: the service port


async def test_deployment_and_statefulset(sandbox: SandboxCluster, client: KubeClient) -> None:
    r = await run(client, "deploy/echo", "echo")
    assert r.pod.name in sandbox.pod_names("demo", {"app": "echo"}) and r.container_port == 9000
    r = await run(client, "sts/postgres", "5432", ns="data")
    assert r.pod.name == "postgres-0" and r.port_name == "postgres"


async def test_pod_by_bare_name_and_named_port(client: KubeClient) -> None:
    r = await run(client, "toolbox", "shell")
    assert (r.pod.name, r.container_port) == ("toolbox", 7000)
    assert local_port_for(parse_port_mapping("shell"), r) == 7000


@pytest.mark.parametrize(
    ("target", "port", "ns", "message"),
    [
        ("svc/dns", "53", "demo", "port 53 of svc/dns is UDP; port-forward supports TCP only"),
        (
            "svc/external-db",
            "5432",
            "demo",
            "svc/external-db has no selector, so no pods back it; forward to a pod instead"
            " (pod/NAME)",
        ),
        (
            "pod/stuck-creating",
            "8080",
            "demo",
            "pod stuck-creating is not running (phase Pending: ContainerCreating)",
        ),
        ("svc/echo", "81", "demo", "svc/echo does not expose port 81; its ports: 80/TCP (tcp)"),
        (
            "svc/crashy",
            "80",
            "demo",
            "svc/crashy has no Ready pod: 1 pod matches its selector, none Ready (crashy:"
            " container crashy not ready (CrashLoopBackOff))",
        ),
        ("pod/nope", "80", "demo", 'pods "nope" not found in namespace "demo"'),
        (
            "svc/echo",
            "80",
            "nope",
            'namespace "nope" not found; check -n/--namespace or the namespace of the context',
        ),
        (
            "toolbox",
            "http",
            "demo",
            'pod toolbox has no container port named "http"; its named ports: shell (7000)',
        ),
    ],
)
async def test_resolution_errors(
    client: KubeClient, target: str, port: str, ns: str, message: str
) -> None:
    assert await error(client, target, port, ns) == message


async def test_crashlooping_deployment(client: KubeClient) -> None:
    message = await error(client, "deploy/checkout", "8080", ns="shop")
    assert message.startswith("deploy/checkout has no Ready pod: 1 pod matches its selector")
    assert message.endswith("container checkout not ready (CrashLoopBackOff))")
