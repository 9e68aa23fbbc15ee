"""KubeClient against the sandbox cluster: every kind, watch, auth and RBAC errors, TLS."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import socket
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from aiohttp import WSMsgType

from portfwd.kube.auth import Credentials
from portfwd.kube.client import KubeClient
from portfwd.kube.config import ClusterConnection, load_connection
from portfwd.kube.errors import ClusterUnreachable, Forbidden, NotFound, Unauthorized
from portfwd.kube.watch import SYNCED, WatchEvent
from portfwd.sandbox.cluster import SandboxCluster
from portfwd.sandbox.pki import generate_pki


async def connect(sandbox: SandboxCluster, context: str | None = None) -> ClusterConnection:
    return await asyncio.to_thread(load_connection, str(sandbox.kubeconfig_path), context)


@pytest_asyncio.fixture
async def client(sandbox: SandboxCluster) -> AsyncIterator[KubeClient]:
    async with KubeClient(await connect(sandbox)) as kube:
        yield kube


class BadToken:
    user = "admin"

    def __init__(self) -> None:
        self.invalidations = 0

    async def get(self) -> Credentials:
        return Credentials(token="not-a-valid-token")

    def invalidate(self) -> None:
        self.invalidations += 1


async def test_lists_and_gets_every_kind(sandbox: SandboxCluster, client: KubeClient) -> None:
    assert client.namespace == "demo" and client.context == "sandbox"
    assert "gitVersion" in await client.version()
    assert {"demo", "data", "shop"} <= {n.name for n in await client.list_namespaces()}
    pods = await client.list_pods("demo")
    assert sorted(p.name for p in pods) == sandbox.pod_names("demo")
    echo_pods = await client.list_pods("demo", "app=echo")
    assert sorted(p.name for p in echo_pods) == sandbox.pod_names("demo", {"app": "echo"})
    assert len(echo_pods) == 2
    pod = await client.get_pod("demo", echo_pods[0].name)
    assert pod.phase == "Running" and pod.container_port("echo") is not None

    services = {s.name: s for s in await client.list_services("demo")}
    assert services["external-db"].selector is None
    echo = await client.get_service("demo", "echo")
    assert echo.selector == {"app": "echo"} and echo.ports[0].target_port == "echo"

    slices = await client.list_endpointslices("demo", "echo")
    assert {ep.target_ref.name for s in slices for ep in s.endpoints if ep.target_ref} == {
        p.name for p in echo_pods
    }
    assert all(s.service_name == "echo" for s in slices)

    deploy = await client.get_workload("deployment", "demo", "echo")
    assert deploy.selector.match_labels == {"app": "echo"} and deploy.replicas == 2
    assert "echo" in {w.name for w in await client.list_workloads("deployment", "demo")}
    sts = await client.get_workload("statefulset", "data", "postgres")
    assert sts.kind == "statefulset" and sts.replicas == 2
    assert [w.name for w in await client.list_workloads("statefulset", "data")] == ["postgres"]
    replicasets = await client.list_workloads("replicaset", "demo")
    assert any(
        rs.selector.matches({"app": "echo", **rs.selector.match_labels}) for rs in replicasets
    )


async def test_missing_objects(client: KubeClient) -> None:
    with pytest.raises(NotFound) as err:
        await client.get_pod("demo", "nope")
    assert str(err.value) == 'pods "nope" not found in namespace "demo"'
    with pytest.raises(NotFound) as err:
        await client.get_namespace("nope")
    assert str(err.value) == 'namespaces "nope" not found'


async def test_watch_sees_a_pod_deletion(sandbox: SandboxCluster, client: KubeClient) -> None:
    victim = sandbox.pod_names("demo", {"app": "echo"})[0]
    seen: list[WatchEvent] = []
    async with (
        asyncio.timeout(20),
        contextlib.aclosing(client.watch("pods", "demo", label_selector="app=echo")) as events,
    ):
        async for event in events:
            seen.append(event)
            if event.type == SYNCED:
                await sandbox.delete_pod("demo", victim)
            if event.type == "DELETED" and event.object["metadata"]["name"] == victim:
                break
    added = [e.object["metadata"]["name"] for e in seen if e.type == "ADDED"]
    assert victim in added
    assert seen[-1].type == "DELETED"


async def test_watch_resumes_and_relists_after_410(
    sandbox: SandboxCluster, client: KubeClient
) -> None:
    """The API server restarts while a pod is deleted and its history compacted: the watch
    reconnects, gets 410 inside the stream, relists, and reports the deletion it missed."""
    victim = sandbox.pod_names("demo", {"app": "toolbox"})[0]
    seen: list[tuple[str, str]] = []
    syncs = 0
    async with (
        asyncio.timeout(30),
        contextlib.aclosing(client.watch("pods", "demo")) as events,
    ):
        async for event in events:
            name = event.object.get("metadata", {}).get("name", "")
            seen.append((event.type, name))
            if event.type == SYNCED:
                syncs += 1
                if syncs == 2:
                    break
                await sandbox.stop_api()
                try:
                    sandbox.force_delete_pod("demo", victim)  # gone at once, no grace period
                    sandbox.store.compact()  # what etcd compaction does to old revisions
                finally:
                    await sandbox.start_api()
    first_sync = seen.index((SYNCED, ""))
    assert ("ADDED", victim) in seen[:first_sync]
    assert seen[first_sync + 1 :] == [("DELETED", victim), (SYNCED, "")]


async def test_watch_with_one_retry_raises_while_the_api_is_down(
    sandbox: SandboxCluster, client: KubeClient
) -> None:
    """retries=1: the first resume that fails ends the watch with ClusterUnreachable, while
    the API server is still stopped (the engine runs its own backoff and shows the state)."""
    seen: list[str] = []
    try:
        with pytest.raises(ClusterUnreachable) as err:
            async with (
                asyncio.timeout(20),
                contextlib.aclosing(client.watch("pods", "demo", retries=1)) as events,
            ):
                async for event in events:
                    seen.append(event.type)
                    if event.type == SYNCED:
                        await sandbox.stop_api()
        with pytest.raises(ClusterUnreachable):  # still down when the watch gave up
            await client.version()
    finally:
        await sandbox.start_api()
    assert "connection refused" in str(err.value)
    assert seen.count(SYNCED) == 1 and "ADDED" in seen
    assert "gitVersion" in await client.version()  # and back again


async def test_bad_token_is_401(sandbox: SandboxCluster) -> None:
    auth = BadToken()
    conn = dataclasses.replace(await connect(sandbox), auth=auth)
    async with KubeClient(conn) as kube:
        with pytest.raises(Unauthorized) as err:
            await kube.list_pods("demo")
    assert str(err.value) == (
        'the API server rejected the credentials of user "admin" (401 Unauthorized); '
        "log in again or refresh the token"
    )
    assert auth.invalidations == 1


async def test_nobody_gets_403(sandbox: SandboxCluster) -> None:
    async with KubeClient(await connect(sandbox, "sandbox-nobody")) as kube:
        with pytest.raises(Forbidden) as err:
            await kube.list_pods("demo")
    assert str(err.value) == (
        'user "nobody" may not list pods in namespace "demo" (403 Forbidden, context'
        ' "sandbox-nobody"); ask your cluster admin to grant "list" on pods'
    )


async def test_limited_cannot_list_namespaces(sandbox: SandboxCluster) -> None:
    async with KubeClient(await connect(sandbox, "sandbox-limited")) as kube:
        assert await kube.list_pods("demo")
        with pytest.raises(Forbidden) as err:
            await kube.list_namespaces()
    assert str(err.value) == (
        'user "limited" may not list namespaces (403 Forbidden, context "sandbox-limited");'
        ' ask your cluster admin to grant "list" on namespaces'
    )


async def test_viewer_cannot_portforward(sandbox: SandboxCluster) -> None:
    pod = sandbox.pod_names("demo", {"app": "echo"})[0]
    async with KubeClient(await connect(sandbox, "sandbox-viewer")) as kube:
        assert await kube.get_pod("demo", pod)
        with pytest.raises(Forbidden) as err:
            await kube.open_portforward("demo", pod, [9000])
    assert str(err.value) == (
        'user "viewer" may not get pods/portforward in namespace "demo" (403 Forbidden, context'
        ' "sandbox-viewer"); ask your cluster admin for a Role granting both "get" and "create"'
        " on pods/portforward"
    )


async def test_portforward_echo_roundtrip(sandbox: SandboxCluster, client: KubeClient) -> None:
    pod = sandbox.pod_names("demo", {"app": "echo"})[0]
    ws = await client.open_portforward("demo", pod, [9000])
    try:
        assert ws.protocol == "v4.channel.k8s.io"
        prefixes = set()
        async with asyncio.timeout(10):
            for _ in range(2):
                msg = await ws.receive()
                assert msg.type == WSMsgType.BINARY
                prefixes.add(bytes(msg.data))
            assert prefixes == {
                b"\x00" + (9000).to_bytes(2, "little"),
                b"\x01" + (9000).to_bytes(2, "little"),
            }
            await ws.send_bytes(b"\x00hello")
            echoed = b""
            while echoed != b"hello":
                msg = await ws.receive()
                assert msg.type == WSMsgType.BINARY and msg.data[0] == 0
                echoed += msg.data[1:]
    finally:
        await ws.close()


async def test_portforward_missing_pod(client: KubeClient) -> None:
    with pytest.raises(NotFound) as err:
        await client.open_portforward("demo", "nope", [80])
    assert str(err.value) == 'pods "nope" not found in namespace "demo"'


async def test_portforward_unscheduled_pod(client: KubeClient) -> None:
    with pytest.raises(Exception) as err:
        await client.open_portforward("demo", "pending-unscheduled", [8080])
    assert str(err.value) == (
        "cannot port-forward to pod pending-unscheduled: pod pending-unscheduled does not have"
        " a host assigned"
    )


async def test_stopped_api_is_unreachable(sandbox: SandboxCluster, client: KubeClient) -> None:
    await client.list_pods("demo")
    await sandbox.stop_api()
    try:
        with pytest.raises(ClusterUnreachable) as err:
            await client.list_pods("demo")
    finally:
        await sandbox.start_api()
    assert str(err.value) == (
        f'cannot reach the Kubernetes API at {sandbox.url} (context "sandbox"): connection'
        " refused — is the cluster running?"
    )
    assert [p.name for p in await client.list_pods("demo", "app=echo")]  # and back again


async def test_never_started_server_is_unreachable(sandbox: SandboxCluster) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    conn = dataclasses.replace(await connect(sandbox), server=f"https://127.0.0.1:{port}")
    async with KubeClient(conn) as kube:
        with pytest.raises(ClusterUnreachable) as err:
            await kube.version()
    assert "connection refused — is the cluster running?" in str(err.value)


async def test_wrong_ca_is_a_tls_error(sandbox: SandboxCluster) -> None:
    conn = dataclasses.replace(await connect(sandbox), ca_pem=generate_pki().ca.cert_pem)
    async with KubeClient(conn) as kube:
        with pytest.raises(ClusterUnreachable) as err:
            await kube.list_pods("demo")
    assert str(err.value).startswith(
        f"cannot verify the TLS certificate of the Kubernetes API at {sandbox.url} (context"
        ' "sandbox"): certificate verify failed ('
    )
    assert str(err.value).endswith(
        'check certificate-authority for cluster "portfwd-sandbox" in your kubeconfig, or that'
        " you use the right context"
    )
    assert err.value.cause == "tls"


async def test_client_certificate_context(sandbox: SandboxCluster) -> None:
    async with KubeClient(await connect(sandbox, "sandbox-cert")) as kube:
        assert await kube.list_pods("demo")


async def test_every_api_connection_uses_the_keepalive_socket(
    sandbox: SandboxCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    """REST calls, watches and tunnels all get sockets that notice a dead peer."""
    from portfwd.kube import http as client_mod

    made: list[socket.socket] = []
    original = client_mod.keepalive_socket

    def recording(addr_info: tuple[object, ...]) -> socket.socket:
        sock = original(addr_info)
        made.append(sock)
        return sock

    monkeypatch.setattr(client_mod, "keepalive_socket", recording)
    async with KubeClient(await connect(sandbox)) as kube:
        await kube.version()
        assert made, "the client opened a connection without the keepalive socket factory"
        assert all(s.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 1 for s in made)
