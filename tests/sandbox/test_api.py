"""REST, watch and error bodies of the sandbox API server, checked over real HTTPS."""

from __future__ import annotations

import asyncio
import ipaddress
import stat
from typing import Any

import aiohttp
import pytest
import yaml

from portfwd.sandbox.cluster import SandboxCluster

from .helpers import call, next_event, ssl_ctx, watch_stream


async def test_version_is_public_and_discovery_needs_auth(sandbox: SandboxCluster) -> None:
    status, body = await call(sandbox, "GET", "/version")
    assert status == 200 and body["major"] == "1"
    status, body = await call(sandbox, "GET", "/api/v1")
    assert status == 403
    status, body = await call(sandbox, "GET", "/apis", sandbox.tokens.admin)
    assert status == 200
    assert {g["name"] for g in body["groups"]} >= {"apps", "discovery.k8s.io"}
    status, body = await call(sandbox, "GET", "/api/v1", sandbox.tokens.nobody)
    names = {r["name"] for r in body["resources"]}
    assert {"pods", "pods/portforward", "services", "namespaces"} <= names


async def test_bad_token_is_401_status(sandbox: SandboxCluster) -> None:
    status, body = await call(sandbox, "GET", "/api/v1/namespaces/demo/pods", "not-a-token")
    assert status == 401
    assert body == {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": "Unauthorized",
        "reason": "Unauthorized",
        "code": 401,
    }


async def test_forbidden_texts_match_the_real_api_server(sandbox: SandboxCluster) -> None:
    status, body = await call(
        sandbox, "GET", "/api/v1/namespaces/default/pods", sandbox.tokens.nobody
    )
    assert status == 403
    assert body["reason"] == "Forbidden" and body["code"] == 403
    assert body["message"] == (
        'pods is forbidden: User "nobody" cannot list resource "pods" in API group "" '
        'in the namespace "default"'
    )
    assert body["details"] == {"kind": "pods"}

    status, body = await call(sandbox, "GET", "/api/v1/namespaces", sandbox.tokens.limited)
    assert status == 403
    assert body["message"] == (
        'namespaces is forbidden: User "limited" cannot list resource "namespaces" in API group "" '
        "at the cluster scope"
    )
    status, body = await call(
        sandbox, "GET", "/api/v1/namespaces/demo/pods", sandbox.tokens.limited
    )
    assert status == 200
    status, body = await call(
        sandbox, "GET", "/api/v1/namespaces/data/pods", sandbox.tokens.limited
    )
    assert status == 403

    status, body = await call(
        sandbox, "GET", "/apis/apps/v1/namespaces/demo/deployments", sandbox.tokens.nobody
    )
    assert body["message"] == (
        'deployments.apps is forbidden: User "nobody" cannot list resource "deployments" '
        'in API group "apps" in the namespace "demo"'
    )


async def test_portforward_route_errors(sandbox: SandboxCluster) -> None:
    echo = sandbox.pod_names("demo", {"app": "echo"})[0]
    path = f"/api/v1/namespaces/demo/pods/{echo}/portforward?ports=9000"
    status, body = await call(sandbox, "GET", path, sandbox.tokens.viewer)
    assert status == 403
    assert body["message"] == (
        f'pods "{echo}" is forbidden: User "viewer" cannot get resource "pods/portforward" '
        'in API group "" in the namespace "demo"'
    )
    assert body["details"] == {"name": echo, "kind": "pods"}
    status, body = await call(sandbox, "GET", path)
    assert status == 403
    assert 'User "system:anonymous" cannot get resource "pods/portforward"' in body["message"]

    status, body = await call(
        sandbox,
        "GET",
        "/api/v1/namespaces/demo/pods/nope/portforward?ports=80",
        sandbox.tokens.admin,
    )
    assert status == 404
    assert body["message"] == 'pods "nope" not found'
    assert body["details"] == {"name": "nope", "kind": "pods"}

    status, body = await call(
        sandbox,
        "GET",
        "/api/v1/namespaces/demo/pods/pending-unscheduled/portforward?ports=8080",
        sandbox.tokens.admin,
    )
    assert status == 400
    assert body["reason"] == "BadRequest"
    assert body["message"] == "pod pending-unscheduled does not have a host assigned"


async def test_get_missing_pod_is_404_status(sandbox: SandboxCluster) -> None:
    status, body = await call(
        sandbox, "GET", "/api/v1/namespaces/demo/pods/nope", sandbox.tokens.admin
    )
    assert status == 404
    assert body["reason"] == "NotFound"
    assert body["message"] == 'pods "nope" not found'


@pytest.mark.parametrize(
    ("selector", "expected"),
    [
        ("app=echo", {"echo"}),
        ("app==web", {"web"}),
        ("app in (echo,web)", {"echo", "web"}),
        ("app notin (echo,web,batch,api,dns,crashy)", {"toolbox"}),
        ("app!=batch,app!=echo,app!=web,app!=api,app!=dns,app!=crashy", {"toolbox"}),
        ("pod-template-hash", {"echo", "web", "api", "dns"}),
        ("!pod-template-hash", {"toolbox", "crashy", "batch"}),
    ],
)
async def test_label_selectors(sandbox: SandboxCluster, selector: str, expected: set[str]) -> None:
    status, body = await call(
        sandbox,
        "GET",
        "/api/v1/namespaces/demo/pods?labelSelector=" + selector.replace(" ", "+"),
        sandbox.tokens.admin,
    )
    assert status == 200
    assert {p["metadata"]["labels"]["app"] for p in body["items"]} == expected


async def test_field_selector_and_list_metadata(sandbox: SandboxCluster) -> None:
    status, body = await call(
        sandbox,
        "GET",
        "/api/v1/namespaces/demo/pods?fieldSelector=metadata.name%3Dcrashy",
        sandbox.tokens.admin,
    )
    assert [p["metadata"]["name"] for p in body["items"]] == ["crashy"]
    assert int(body["metadata"]["resourceVersion"]) > 0
    assert all(int(p["metadata"]["resourceVersion"]) > 0 for p in body["items"])
    status, body = await call(
        sandbox, "GET", "/api/v1/pods?fieldSelector=bogus%3D1", sandbox.tokens.admin
    )
    assert status == 400


async def test_endpointslices(sandbox: SandboxCluster) -> None:
    _, body = await call(
        sandbox,
        "GET",
        "/apis/discovery.k8s.io/v1/namespaces/demo/endpointslices?labelSelector=kubernetes.io/service-name%3Decho",
        sandbox.tokens.admin,
    )
    assert body["kind"] == "EndpointSliceList" and body["apiVersion"] == "discovery.k8s.io/v1"
    (es,) = body["items"]
    # Named targetPort "echo" resolved to the container port.
    assert es["ports"] == [{"name": "tcp", "protocol": "TCP", "port": 9000}]
    assert len(es["endpoints"]) == 2
    for ep in es["endpoints"]:
        assert ep["conditions"] == {"ready": True, "serving": True, "terminating": False}
        assert ep["targetRef"]["kind"] == "Pod"
        assert not ipaddress.ip_address(ep["addresses"][0]).is_loopback

    _, body = await call(
        sandbox,
        "GET",
        "/apis/discovery.k8s.io/v1/namespaces/demo/endpointslices?labelSelector=kubernetes.io/service-name%3Dweb",
        sandbox.tokens.admin,
    )
    readiness = sorted(ep["conditions"]["ready"] for ep in body["items"][0]["endpoints"])
    assert readiness == [False, True, True]

    _, body = await call(
        sandbox,
        "GET",
        "/apis/discovery.k8s.io/v1/namespaces/data/endpointslices",
        sandbox.tokens.admin,
    )
    pg = [
        s
        for s in body["items"]
        if s["metadata"]["labels"]["kubernetes.io/service-name"] == "postgres"
    ]
    assert sorted(ep["hostname"] for ep in pg[0]["endpoints"]) == ["postgres-0", "postgres-1"]
    _, svc = await call(
        sandbox, "GET", "/api/v1/namespaces/data/services/postgres", sandbox.tokens.admin
    )
    assert svc["spec"]["clusterIP"] == "None"


async def test_readiness_change_updates_slices_and_watch(sandbox: SandboxCluster) -> None:
    echo = sorted(sandbox.pod_names("demo", {"app": "echo"}))[0]
    path = (
        "/apis/discovery.k8s.io/v1/namespaces/demo/endpointslices"
        "?watch=1&labelSelector=kubernetes.io/service-name%3Decho"
    )
    async with watch_stream(sandbox, path) as (status, events):
        assert status == 200
        first = await next_event(events)
        assert first["type"] == "ADDED"
        await sandbox.set_pod_ready("demo", echo, False)
        ev = await next_event(events, lambda e: e["type"] == "MODIFIED")
        conds = {
            e["targetRef"]["name"]: e["conditions"]["ready"] for e in ev["object"]["endpoints"]
        }
        assert conds[echo] is False
        assert list(conds.values()).count(True) == 1


async def test_watch_too_old_resource_version_is_410_in_stream(sandbox: SandboxCluster) -> None:
    async with watch_stream(sandbox, "/api/v1/namespaces/demo/pods?watch=1&resourceVersion=1") as (
        status,
        events,
    ):
        assert status == 200
        ev = await next_event(events)
    assert ev["type"] == "ERROR"
    obj = ev["object"]
    assert obj["kind"] == "Status" and obj["code"] == 410 and obj["reason"] == "Expired"
    assert obj["message"].startswith("too old resource version: 1 (")


async def test_watch_resumes_from_resource_version(sandbox: SandboxCluster) -> None:
    _, body = await call(sandbox, "GET", "/api/v1/namespaces/demo/pods", sandbox.tokens.admin)
    rv = body["metadata"]["resourceVersion"]
    await sandbox.delete_pod("demo", "toolbox")
    path = f"/api/v1/namespaces/demo/pods?watch=1&resourceVersion={rv}&labelSelector=app%3Dtoolbox"
    async with watch_stream(sandbox, path) as (_, events):
        ev = await next_event(events)
        assert ev["type"] == "MODIFIED"  # Terminating
        assert ev["object"]["metadata"]["deletionTimestamp"]
        ev = await next_event(events)
        assert ev["type"] == "DELETED"
        assert ev["object"]["metadata"]["name"] == "toolbox"


async def test_watch_bookmarks() -> None:
    async with SandboxCluster(bookmark_interval=0.05) as sb:
        path = (
            "/api/v1/namespaces/demo/pods?watch=1&allowWatchBookmarks=true&labelSelector=app%3Dnone"
        )
        async with watch_stream(sb, path) as (_, events):
            ev = await next_event(events)
        assert ev["type"] == "BOOKMARK"
        assert ev["object"]["kind"] == "Pod"
        assert int(ev["object"]["metadata"]["resourceVersion"]) == sb.store.rv


async def test_watch_ends_when_api_stops_and_state_survives_restart(
    sandbox: SandboxCluster,
) -> None:
    port = sandbox.port
    before = sorted(sandbox.pod_names("demo"))
    async with watch_stream(sandbox, "/api/v1/namespaces/demo/pods?watch=1") as (_, events):
        await next_event(events)
        await sandbox.stop_api()
        with pytest.raises((aiohttp.ClientError, OSError)):
            await call(sandbox, "GET", "/version")
    await sandbox.start_api()
    assert sandbox.port == port
    status, body = await call(sandbox, "GET", "/api/v1/namespaces/demo/pods", sandbox.tokens.admin)
    assert status == 200
    assert sorted(p["metadata"]["name"] for p in body["items"]) == before


async def test_client_certificate_auth(sandbox: SandboxCluster) -> None:
    status, body = await call(sandbox, "GET", "/api/v1/namespaces", cert=True)
    assert status == 200
    assert "demo" in {n["metadata"]["name"] for n in body["items"]}


async def test_kubeconfig_contexts_and_mode(sandbox: SandboxCluster) -> None:
    mode = stat.S_IMODE(sandbox.kubeconfig_path.stat().st_mode)
    assert mode == 0o600
    cfg: dict[str, Any] = yaml.safe_load(sandbox.kubeconfig_path.read_text())
    assert cfg["current-context"] == "sandbox"
    contexts = {c["name"]: c["context"] for c in cfg["contexts"]}
    assert set(contexts) == {
        "sandbox",
        "sandbox-cert",
        "sandbox-viewer",
        "sandbox-pf-create",
        "sandbox-pf-get",
        "sandbox-limited",
        "sandbox-nobody",
    }
    assert all(c["namespace"] == "demo" for c in contexts.values())
    assert cfg["clusters"][0]["cluster"]["server"] == sandbox.url


async def test_scale_subresource_and_patch(sandbox: SandboxCluster) -> None:
    path = "/apis/apps/v1/namespaces/demo/deployments/echo/scale"
    status, body = await call(sandbox, "GET", path, sandbox.tokens.admin)
    assert status == 200 and body["kind"] == "Scale" and body["spec"]["replicas"] == 2
    assert body["status"]["selector"] == "app=echo"
    status, body = await call(
        sandbox,
        "PUT",
        path,
        sandbox.tokens.admin,
        body={"kind": "Scale", "apiVersion": "autoscaling/v1", "spec": {"replicas": 4}},
    )
    assert status == 200 and body["spec"]["replicas"] == 4
    assert await sandbox.wait_for(lambda: len(sandbox.pod_names("demo", {"app": "echo"})) == 4)
    status, body = await call(
        sandbox,
        "PATCH",
        "/apis/apps/v1/namespaces/demo/deployments/echo",
        sandbox.tokens.viewer,
        body={"spec": {"replicas": 1}},
        content_type="application/merge-patch+json",
    )
    assert status == 403


async def test_pod_ips_and_not_running_states(sandbox: SandboxCluster) -> None:
    _, body = await call(sandbox, "GET", "/api/v1/pods", sandbox.tokens.admin)
    pods = {p["metadata"]["name"]: p for p in body["items"]}
    for pod in pods.values():
        ip = pod["status"].get("podIP")
        if ip:
            assert ipaddress.ip_address(ip) in ipaddress.ip_network("10.244.0.0/16")
    pending = pods["pending-unscheduled"]
    assert "nodeName" not in pending["spec"] and pending["status"]["phase"] == "Pending"
    creating = pods["stuck-creating"]
    assert creating["spec"]["nodeName"] and creating["status"]["phase"] == "Pending"
    waiting = creating["status"]["containerStatuses"][0]["state"]["waiting"]
    assert waiting["reason"] == "ContainerCreating"
    crashy = pods["crashy"]["status"]["containerStatuses"][0]
    assert crashy["state"]["waiting"]["reason"] == "CrashLoopBackOff"


async def test_dial_reaches_backend_and_honours_controls(sandbox: SandboxCluster) -> None:
    echo = sorted(sandbox.pod_names("demo", {"app": "echo"}))[0]
    pod = sandbox.get_object("pods", "demo", echo)
    assert pod is not None
    uid = pod["metadata"]["uid"]
    reader, writer = await sandbox.dial("demo", echo, uid, 9000)
    writer.write(b"hello sandbox")
    await writer.drain()
    assert await asyncio.wait_for(reader.readexactly(13), 10) == b"hello sandbox"

    with pytest.raises(ConnectionRefusedError, match="connect: connection refused"):
        await sandbox.dial("demo", echo, uid, 9999)
    await sandbox.set_backend_refusing("demo", echo, 9000)
    with pytest.raises(ConnectionRefusedError, match="connect: connection refused"):
        await sandbox.dial("demo", echo, uid, 9000)
    await sandbox.set_backend_refusing("demo", echo, 9000, refusing=False)

    # Deleting the pod drops the open connection, like a container being killed.
    await sandbox.delete_pod("demo", echo)
    assert await asyncio.wait_for(reader.read(), 10) == b""
    writer.close()
    with pytest.raises(ConnectionRefusedError):
        await sandbox.dial("demo", echo, uid, 9000)

    crashy = sandbox.get_object("pods", "demo", "crashy")
    assert crashy is not None
    with pytest.raises(ConnectionRefusedError):
        await sandbox.dial("demo", "crashy", crashy["metadata"]["uid"], 8080)


async def test_server_certificate_names(sandbox: SandboxCluster) -> None:
    for host in ("127.0.0.1", "localhost"):
        url = sandbox.url.replace("127.0.0.1", host)
        async with aiohttp.ClientSession() as s, s.get(url + "/version", ssl=ssl_ctx(sandbox)) as r:
            assert r.status == 200


async def test_events_like_a_kubelet(sandbox: SandboxCluster) -> None:
    path = "/api/v1/namespaces/demo/events?fieldSelector=involvedObject.name%3Dcrashy"
    status, body = await call(sandbox, "GET", path, sandbox.tokens.admin)
    assert status == 200 and body["kind"] == "EventList"
    reasons = {(e["type"], e["reason"]) for e in body["items"]}
    assert ("Warning", "BackOff") in reasons
    await sandbox.delete_pod("demo", "toolbox")
    path = "/api/v1/namespaces/demo/events?fieldSelector=involvedObject.name%3Dtoolbox"
    _, body = await call(sandbox, "GET", path, sandbox.tokens.admin)
    assert body["items"][-1]["reason"] == "Killing"
    assert body["items"][-1]["message"] == "Stopping container toolbox"


async def test_set_pod_ready_heals_and_breaks_pods(sandbox: SandboxCluster) -> None:
    def ready(name: str) -> bool:
        pod = sandbox.get_object("pods", "demo", name)
        assert pod is not None
        return any(
            c["type"] == "Ready" and c["status"] == "True" for c in pod["status"]["conditions"]
        )

    for name in ("crashy", "stuck-creating", "pending-unscheduled"):
        assert not ready(name)
        await sandbox.set_pod_ready("demo", name, True)
        assert ready(name)
    pod = sandbox.get_object("pods", "demo", "pending-unscheduled")
    assert pod is not None and pod["spec"]["nodeName"] and pod["status"]["podIP"]
    await sandbox.set_pod_ready("demo", "crashy", False)
    assert not ready("crashy")
    _, body = await call(
        sandbox,
        "GET",
        "/apis/discovery.k8s.io/v1/namespaces/demo/endpointslices?labelSelector=kubernetes.io/service-name%3Dcrashy",
        sandbox.tokens.admin,
    )
    assert [e["conditions"]["ready"] for e in body["items"][0]["endpoints"]] == [False]


async def test_undeclared_port_can_be_dialled(sandbox: SandboxCluster) -> None:
    """Like a real pod, a process may listen on a port the spec does not declare."""
    name = sandbox.pod_names("demo", {"app": "echo"})[0]
    pod = sandbox.get_object("pods", "demo", name)
    assert pod is not None
    declared = [p["containerPort"] for p in pod["spec"]["containers"][0]["ports"]]
    assert 6060 not in declared
    reader, writer = await sandbox.dial("demo", name, pod["metadata"]["uid"], 6060)
    try:
        writer.write(b"GET / HTTP/1.0\r\n\r\n")
        await writer.drain()
        response = await asyncio.wait_for(reader.read(), 10)
        assert response.startswith(b"HTTP/1.")
        assert name.encode() in response
    finally:
        writer.close()


async def test_list_chunking_with_limit_and_continue(sandbox: SandboxCluster) -> None:
    _, full = await call(sandbox, "GET", "/api/v1/pods", sandbox.tokens.admin)
    want = [(p["metadata"]["namespace"], p["metadata"]["name"]) for p in full["items"]]
    got: list[tuple[str, str]] = []
    path = "/api/v1/pods?limit=4"
    pages = 0
    while True:
        status, body = await call(sandbox, "GET", path, sandbox.tokens.admin)
        assert status == 200
        pages += 1
        assert len(body["items"]) <= 4
        got += [(p["metadata"]["namespace"], p["metadata"]["name"]) for p in body["items"]]
        token = body["metadata"].get("continue")
        if not token:
            break
        assert body["metadata"]["remainingItemCount"] == len(want) - len(got)
        path = f"/api/v1/pods?limit=4&continue={token}"
    assert got == want
    assert pages == -(-len(want) // 4)
    status, body = await call(
        sandbox, "GET", "/api/v1/pods?limit=4&continue=bogus", sandbox.tokens.admin
    )
    assert status == 400


async def test_short_history_expires_watches_and_continue_tokens() -> None:
    """With a tiny history, a resourceVersion a few events old is gone: 410 for both."""
    async with SandboxCluster(watch_history=3) as sb:
        _, page = await call(sb, "GET", "/api/v1/namespaces/demo/pods?limit=2", sb.tokens.admin)
        rv = page["metadata"]["resourceVersion"]
        token = page["metadata"]["continue"]
        for _ in range(3):
            await sb.set_pod_ready("demo", "toolbox", False)
            await sb.set_pod_ready("demo", "toolbox", True)
        status, body = await call(
            sb, "GET", f"/api/v1/namespaces/demo/pods?limit=2&continue={token}", sb.tokens.admin
        )
        assert status == 410 and body["reason"] == "Expired"
        path = f"/api/v1/namespaces/demo/pods?watch=1&resourceVersion={rv}"
        async with watch_stream(sb, path) as (status, events):
            assert status == 200
            ev = await next_event(events)
        assert ev["type"] == "ERROR" and ev["object"]["code"] == 410
        assert ev["object"]["message"].startswith(f"too old resource version: {rv} (")


async def test_rollout_keeps_every_replica_serving(sandbox: SandboxCluster) -> None:
    """A rollout never has fewer Ready, non-terminating pods than replicas."""

    def serving(pod: dict[str, Any]) -> bool:
        if pod["metadata"].get("deletionTimestamp"):
            return False
        conds = pod["status"].get("conditions", [])
        return any(c["type"] == "Ready" and c["status"] == "True" for c in conds)

    before = set(sandbox.pod_names("demo", {"app": "echo"}))
    path = "/api/v1/namespaces/demo/pods?watch=1&labelSelector=app%3Decho"
    async with watch_stream(sandbox, path) as (_, events):
        state: dict[str, bool] = {}
        for _ in before:
            ev = await next_event(events)
            state[ev["object"]["metadata"]["name"]] = serving(ev["object"])
        assert sum(state.values()) == 2
        status, _ = await call(
            sandbox,
            "PATCH",
            "/apis/apps/v1/namespaces/demo/deployments/echo",
            sandbox.tokens.admin,
            body={"spec": {"template": {"metadata": {"annotations": {"x": "1"}}}}},
            content_type="application/strategic-merge-patch+json",
        )
        assert status == 200
        lowest = 2
        while any(n in before for n in state) or sum(state.values()) < 2:
            ev = await next_event(events)
            name = ev["object"]["metadata"]["name"]
            if ev["type"] == "DELETED":
                state.pop(name, None)
            else:
                state[name] = serving(ev["object"])
            lowest = min(lowest, sum(state.values()))
        assert lowest == 2
        assert not (set(state) & before) and len(state) == 2


async def test_watch_list_initial_events_end_bookmark(sandbox: SandboxCluster) -> None:
    path = (
        "/api/v1/namespaces/demo/pods?watch=1&sendInitialEvents=true&allowWatchBookmarks=true"
        "&resourceVersionMatch=NotOlderThan&fieldSelector=metadata.name%3Dtoolbox"
    )
    async with watch_stream(sandbox, path) as (_, events):
        first = await next_event(events)
        end = await next_event(events)
    assert (first["type"], first["object"]["metadata"]["name"]) == ("ADDED", "toolbox")
    assert end["type"] == "BOOKMARK"
    assert end["object"]["metadata"]["annotations"] == {"k8s.io/initial-events-end": "true"}


async def test_statefulset_pod_comes_back_under_its_name(sandbox: SandboxCluster) -> None:
    async def ask(uid: str) -> bytes:
        reader, writer = await sandbox.dial("data", "postgres-0", uid, 5432)
        try:
            writer.write(b"select 1\n")
            await writer.drain()
            return await asyncio.wait_for(reader.readline(), 10)
        finally:
            writer.close()

    old = sandbox.get_object("pods", "data", "postgres-0")
    assert old is not None
    assert await ask(old["metadata"]["uid"]) == b"postgres-0 select 1\n"
    await sandbox.delete_pod("data", "postgres-0")

    def back() -> bool:
        pod = sandbox.get_object("pods", "data", "postgres-0")
        return (
            pod is not None
            and pod["metadata"]["uid"] != old["metadata"]["uid"]
            and pod["status"]["phase"] == "Running"
            and pod["status"]["containerStatuses"][0]["ready"]
        )

    assert await sandbox.wait_for(back, 30)
    new = sandbox.get_object("pods", "data", "postgres-0")
    assert new is not None
    assert await ask(new["metadata"]["uid"]) == b"postgres-0 select 1\n"
    with pytest.raises(ConnectionRefusedError):
        await ask(old["metadata"]["uid"])
