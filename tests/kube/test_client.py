"""KubeClient against a tiny scripted API server: auth retry, errors, paging, watch, upgrade.

The sandbox tests (test_client_sandbox.py) cover the same client against a full fake cluster;
these pin down the wire details a full cluster cannot easily be made to produce (a 410 in the
middle of a watch, a dropped stream, a paged list, a TLS mismatch).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from aiohttp import WSMsgType, web
from yarl import URL

from portfwd.errors import ConfigError
from portfwd.kube.auth import Credentials
from portfwd.kube.client import KubeClient
from portfwd.kube.config import ClusterConnection
from portfwd.kube.errors import ApiError, ClusterUnreachable, Forbidden, NotFound, Unauthorized
from portfwd.kube.proxy import env_proxy, no_proxy
from portfwd.kube.watch import SYNCED, WatchEvent
from portfwd.sandbox.pki import generate_pki, server_ssl_context
from tests.support.ports import refused_port

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class Tokens:
    """An AuthProvider handing out tokens in order; invalidate() moves to the next one."""

    def __init__(self, *tokens: str, user: str = "alice") -> None:
        self.tokens = list(tokens)
        self.user = user
        self.invalidations = 0

    async def get(self) -> Credentials:
        return Credentials(token=self.tokens[min(self.invalidations, len(self.tokens) - 1)])

    def invalidate(self) -> None:
        self.invalidations += 1


def connection(
    server: str, auth: Tokens | None = None, *, ca_pem: bytes | None = None
) -> ClusterConnection:
    return ClusterConnection(
        context="test",
        cluster="c1",
        user="alice",
        server=server,
        namespace="demo",
        ca_pem=ca_pem,
        insecure_skip_tls_verify=False,
        tls_server_name=None,
        proxy_url=None,
        auth=auth or Tokens("good"),
    )


class FakeApi:
    """One aiohttp server; tests register handlers by path and read the requests seen."""

    def __init__(self) -> None:
        self.routes: dict[str, Handler] = {}
        self.requests: list[web.Request] = []
        self.url = ""

    async def dispatch(self, request: web.Request) -> web.StreamResponse:
        self.requests.append(request)
        handler = self.routes.get(request.path)
        if handler is None:
            return status_response(404, "NotFound", f"no route {request.path}")
        return await handler(request)

    def seen(self, path: str) -> list[web.Request]:
        return [r for r in self.requests if r.path == path]


def status_response(
    code: int, reason: str, message: str, details: dict[str, Any] | None = None
) -> web.Response:
    body = {
        "kind": "Status",
        "apiVersion": "v1",
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }
    if details is not None:
        body["details"] = details
    return web.json_response(body, status=code)


async def _serve(api: FakeApi, ssl_ctx: Any = None) -> AsyncIterator[FakeApi]:
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", api.dispatch)
    runner = web.AppRunner(app, shutdown_timeout=0.5)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=ssl_ctx)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    api.url = f"{'https' if ssl_ctx else 'http'}://127.0.0.1:{port}"
    try:
        yield api
    finally:
        await asyncio.wait_for(runner.cleanup(), 10)


@pytest_asyncio.fixture
async def api() -> AsyncIterator[FakeApi]:
    async for served in _serve(FakeApi()):
        yield served


@pytest_asyncio.fixture
async def client(api: FakeApi) -> AsyncIterator[KubeClient]:
    async with KubeClient(connection(api.url), request_timeout=5.0) as kube:
        yield kube


def pod_json(name: str, rv: str = "1", uid: str | None = None) -> dict[str, Any]:
    return {
        "metadata": {
            "name": name,
            "namespace": "demo",
            "uid": uid or f"uid-{name}",
            "resourceVersion": rv,
        },
        "status": {"phase": "Running"},
    }


# --- REST ------------------------------------------------------------------------------------


async def test_get_pod_sends_token_and_parses(api: FakeApi, client: KubeClient) -> None:
    async def get_pod(request: web.Request) -> web.Response:
        return web.json_response(pod_json("web"))

    api.routes["/api/v1/namespaces/demo/pods/web"] = get_pod
    pod = await client.get_pod("demo", "web")
    assert (pod.name, pod.phase) == ("web", "Running")
    request = api.requests[0]
    assert request.headers["Authorization"] == "Bearer good"
    assert request.headers["User-Agent"].startswith("portfwd/")


async def test_not_found_names_the_namespace(api: FakeApi, client: KubeClient) -> None:
    async def missing(request: web.Request) -> web.Response:
        return status_response(
            404, "NotFound", 'pods "nope" not found', {"name": "nope", "kind": "pods"}
        )

    api.routes["/api/v1/namespaces/demo/pods/nope"] = missing
    with pytest.raises(NotFound) as err:
        await client.get_pod("demo", "nope")
    assert str(err.value) == 'pods "nope" not found in namespace "demo"'
    assert err.value.status == 404


async def test_401_invalidates_and_retries_once(api: FakeApi) -> None:
    async def pods(request: web.Request) -> web.Response:
        if request.headers.get("Authorization") != "Bearer fresh":
            return status_response(401, "Unauthorized", "Unauthorized")
        return web.json_response({"kind": "PodList", "metadata": {}, "items": [pod_json("a")]})

    api.routes["/api/v1/namespaces/demo/pods"] = pods
    tokens = Tokens("stale", "fresh")
    async with KubeClient(connection(api.url, tokens)) as kube:
        assert [p.name for p in await kube.list_pods("demo")] == ["a"]
    assert tokens.invalidations == 1
    assert len(api.requests) == 2


async def test_401_twice_is_a_clear_error(api: FakeApi) -> None:
    async def pods(request: web.Request) -> web.Response:
        return status_response(401, "Unauthorized", "Unauthorized")

    api.routes["/api/v1/namespaces/demo/pods"] = pods
    tokens = Tokens("bad", "still-bad")
    async with KubeClient(connection(api.url, tokens)) as kube:
        with pytest.raises(Unauthorized) as err:
            await kube.list_pods("demo")
    assert str(err.value) == (
        'the API server rejected the credentials of user "alice" (401 Unauthorized); '
        "log in again or refresh the token"
    )
    assert tokens.invalidations == 1
    assert len(api.requests) == 2  # exactly one retry


async def test_403_names_verb_and_resource(api: FakeApi, client: KubeClient) -> None:
    async def pods(request: web.Request) -> web.Response:
        return status_response(
            403,
            "Forbidden",
            'pods is forbidden: User "alice" cannot list resource "pods" in API group "" in the'
            ' namespace "demo"',
        )

    async def deployments(request: web.Request) -> web.Response:
        return status_response(
            403,
            "Forbidden",
            'deployments.apps "x" is forbidden: User "bob" cannot get resource "deployments" in'
            ' API group "apps" in the namespace "demo"',
        )

    api.routes["/api/v1/namespaces/demo/pods"] = pods
    api.routes["/apis/apps/v1/namespaces/demo/deployments/x"] = deployments
    with pytest.raises(Forbidden) as err:
        await client.list_pods("demo")
    assert str(err.value) == (
        'user "alice" may not list pods in namespace "demo" (403 Forbidden, context "test"); '
        'ask your cluster admin to grant "list" on pods'
    )
    with pytest.raises(Forbidden) as err:
        await client.get_workload("deployment", "demo", "x")
    assert str(err.value) == (
        'user "bob" may not get deployments in namespace "demo" (403 Forbidden, context "test");'
        ' ask your cluster admin to grant "get" on deployments.apps'
    )


async def test_list_follows_continue_tokens(api: FakeApi, client: KubeClient) -> None:
    async def services(request: web.Request) -> web.Response:
        token = request.query.get("continue")
        assert request.query["limit"] == "500"
        if token is None:
            return web.json_response(
                {
                    "metadata": {"continue": "page2", "resourceVersion": ""},
                    "items": [{"metadata": {"name": "a"}, "spec": {"selector": {"app": "a"}}}],
                }
            )
        assert token == "page2"
        return web.json_response(
            {"metadata": {"resourceVersion": "77"}, "items": [{"metadata": {"name": "b"}}]}
        )

    api.routes["/api/v1/namespaces/demo/services"] = services
    svcs = await client.list_services("demo")
    assert [s.name for s in svcs] == ["a", "b"]
    assert svcs[0].selector == {"app": "a"} and svcs[1].selector is None


async def test_endpointslices_filtered_by_service_label(api: FakeApi, client: KubeClient) -> None:
    async def slices(request: web.Request) -> web.Response:
        assert request.query["labelSelector"] == "kubernetes.io/service-name=echo"
        return web.json_response({"metadata": {"resourceVersion": "5"}, "items": []})

    api.routes["/apis/discovery.k8s.io/v1/namespaces/demo/endpointslices"] = slices
    assert await client.list_endpointslices("demo", "echo") == []


async def test_other_errors_keep_the_status_message(api: FakeApi, client: KubeClient) -> None:
    async def boom(request: web.Request) -> web.Response:
        return status_response(500, "InternalError", "etcd is sad")

    api.routes["/api/v1/namespaces"] = boom
    with pytest.raises(ApiError) as err:
        await client.list_namespaces()
    assert str(err.value) == (
        'the API server answered 500 InternalError to list namespaces: etcd is sad (context "test")'
    )


async def test_multi_line_status_message_becomes_one_line(api: FakeApi, client: KubeClient) -> None:
    message = 'admission webhook "policy" denied the request:\n  rule 1: no\n  rule 2: no\n'

    async def denied(request: web.Request) -> web.Response:
        return status_response(400, "BadRequest", message)

    api.routes["/api/v1/namespaces"] = denied
    with pytest.raises(ApiError) as err:
        await client.list_namespaces()
    assert str(err.value) == (
        'the API server answered 400 BadRequest to list namespaces: admission webhook "policy"'
        ' denied the request: rule 1: no rule 2: no (context "test")'
    )
    assert err.value.api_message == message  # kept verbatim for callers that want it


# --- connection failures ----------------------------------------------------------------------


async def test_unreachable_server_message() -> None:
    url = f"https://127.0.0.1:{refused_port()}"
    async with KubeClient(connection(url)) as kube:
        with pytest.raises(ClusterUnreachable) as err:
            await kube.list_namespaces()
    assert str(err.value) == (
        f'cannot reach the Kubernetes API at {url} (context "test"): connection refused'
        " — is the cluster running?"
    )
    assert err.value.cause == "refused"


async def test_tls_failure_with_wrong_ca(tmp_path: Path) -> None:
    server_pki, other_pki = generate_pki(), generate_pki()
    async for served in _serve(FakeApi(), server_ssl_context(server_pki, tmp_path)):
        conn = connection(served.url, ca_pem=other_pki.ca.cert_pem)
        async with KubeClient(conn) as kube:
            with pytest.raises(ClusterUnreachable) as err:
                await kube.version()
        message = str(err.value)
        assert message.startswith(
            "cannot verify the TLS certificate of the Kubernetes API at"
            f' {served.url} (context "test"): certificate verify failed ('
        )
        assert message.endswith(
            '— check certificate-authority for cluster "c1" in your kubeconfig, or that you use'
            " the right context"
        )
        assert err.value.cause == "tls"
        assert served.requests == []


async def test_tls_with_right_ca_works(tmp_path: Path) -> None:
    pki = generate_pki()
    api = FakeApi()

    async def version(request: web.Request) -> web.Response:
        return web.json_response({"gitVersion": "v1.36.2"})

    api.routes["/version"] = version
    async for served in _serve(api, server_ssl_context(pki, tmp_path)):
        async with KubeClient(connection(served.url, ca_pem=pki.ca.cert_pem)) as kube:
            assert (await kube.version())["gitVersion"] == "v1.36.2"


async def test_request_timeout_message(api: FakeApi) -> None:
    release = asyncio.Event()

    async def slow(request: web.Request) -> web.Response:
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(release.wait(), 10)
        return web.json_response({})

    api.routes["/version"] = slow
    async with KubeClient(connection(api.url), request_timeout=0.2) as kube:
        with pytest.raises(ClusterUnreachable) as err:
            await kube.version()
    release.set()
    assert str(err.value) == (
        f'the Kubernetes API at {api.url} (context "test") did not answer get the server version'
        " within 0.2 s — the server may be overloaded; try again"
    )
    assert err.value.cause == "timeout"


# --- watch ------------------------------------------------------------------------------------


class WatchScript:
    """Serves a pod list, then watch streams scripted per call (list of JSON lines or None to
    drop the connection after the lines)."""

    def __init__(self, api: FakeApi, lists: list[list[dict[str, Any]]], rvs: list[str]) -> None:
        self.lists, self.rvs = lists, rvs
        self.streams: list[tuple[list[dict[str, Any]], str]] = []
        self.list_calls = 0
        self.watch_rvs: list[str] = []
        self.block = asyncio.Event()
        api.routes["/api/v1/namespaces/demo/pods"] = self.handle

    async def handle(self, request: web.Request) -> web.StreamResponse:
        if request.query.get("watch") != "1":
            index = min(self.list_calls, len(self.lists) - 1)
            self.list_calls += 1
            return web.json_response(
                {"metadata": {"resourceVersion": self.rvs[index]}, "items": self.lists[index]}
            )
        assert request.query["allowWatchBookmarks"] == "true"
        self.watch_rvs.append(request.query["resourceVersion"])
        if not self.streams:
            await asyncio.wait_for(self.block.wait(), 10)  # nothing more to say: hang
            return web.Response()
        lines, ending = self.streams.pop(0)
        if ending == "http410":
            return status_response(410, "Expired", "too old resource version")
        resp = web.StreamResponse()
        await resp.prepare(request)
        for line in lines:
            await resp.write(json.dumps(line).encode() + b"\n")
        if ending == "drop":
            assert request.transport is not None
            request.transport.close()
        else:
            await resp.write_eof()
        return resp


async def collect(events: AsyncIterator[WatchEvent], count: int) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    async with asyncio.timeout(10):
        async for event in events:
            name = event.object.get("metadata", {}).get("name", "")
            out.append((event.type, name or event.object.get("resourceVersion", "")))
            if len(out) == count:
                break
    return out


async def test_watch_lists_then_streams(api: FakeApi, client: KubeClient) -> None:
    script = WatchScript(api, [[pod_json("a"), pod_json("b")]], ["10"])
    script.streams.append(
        (
            [
                {"type": "MODIFIED", "object": pod_json("a", "11")},
                {"type": "BOOKMARK", "object": {"metadata": {"resourceVersion": "12"}}},
                {"type": "DELETED", "object": pod_json("b", "13")},
            ],
            "eof",
        )
    )
    async with contextlib.aclosing(client.watch("pods", "demo")) as events:
        seen = await collect(events, 6)
    assert seen == [
        ("ADDED", "a"),
        ("ADDED", "b"),
        (SYNCED, "10"),
        ("MODIFIED", "a"),
        ("BOOKMARK", ""),
        ("DELETED", "b"),
    ]
    assert script.watch_rvs[0] == "10"


async def test_watch_resumes_from_last_rv_after_drop(api: FakeApi, client: KubeClient) -> None:
    script = WatchScript(api, [[pod_json("a")]], ["10"])
    script.streams.append(([{"type": "MODIFIED", "object": pod_json("a", "15")}], "drop"))
    script.streams.append(([{"type": "MODIFIED", "object": pod_json("a", "16")}], "eof"))
    async with contextlib.aclosing(client.watch("pods", "demo")) as events:
        seen = await collect(events, 4)
    assert seen == [("ADDED", "a"), (SYNCED, "10"), ("MODIFIED", "a"), ("MODIFIED", "a")]
    assert script.watch_rvs[:2] == ["10", "15"]
    assert script.list_calls == 1  # resumed, not relisted


async def test_watch_relists_on_410_inside_the_stream(api: FakeApi, client: KubeClient) -> None:
    before = [pod_json("a", "5"), pod_json("b", "6"), pod_json("c", "7")]
    # After the gap: a unchanged, b deleted, c recreated (new uid), d new.
    after = [pod_json("a", "5"), pod_json("c", "30", uid="uid-c2"), pod_json("d", "31")]
    script = WatchScript(api, [before, after], ["10", "40"])
    expired = {
        "type": "ERROR",
        "object": {
            "kind": "Status",
            "apiVersion": "v1",
            "status": "Failure",
            "message": "too old resource version: 10 (35)",
            "reason": "Expired",
            "code": 410,
        },
    }
    script.streams.append(([expired], "eof"))
    async with contextlib.aclosing(client.watch("pods", "demo")) as events:
        seen = await collect(events, 9)
    assert seen == [
        ("ADDED", "a"),
        ("ADDED", "b"),
        ("ADDED", "c"),
        (SYNCED, "10"),
        ("DELETED", "b"),
        ("DELETED", "c"),
        ("ADDED", "c"),
        ("ADDED", "d"),
        (SYNCED, "40"),
    ]
    assert script.list_calls == 2


async def test_watch_relists_on_http_410(api: FakeApi, client: KubeClient) -> None:
    script = WatchScript(api, [[pod_json("a")], [pod_json("a", "50")]], ["10", "60"])
    script.streams.append(([], "http410"))
    async with contextlib.aclosing(client.watch("pods", "demo")) as events:
        seen = await collect(events, 4)
    assert seen == [("ADDED", "a"), (SYNCED, "10"), ("MODIFIED", "a"), (SYNCED, "60")]


async def test_watch_forbidden_raises(api: FakeApi, client: KubeClient) -> None:
    async def pods(request: web.Request) -> web.Response:
        return status_response(
            403,
            "Forbidden",
            'pods is forbidden: User "alice" cannot watch resource "pods" in API group "" in'
            ' the namespace "demo"',
        )

    api.routes["/api/v1/namespaces/demo/pods"] = pods
    with pytest.raises(Forbidden):
        async with contextlib.aclosing(client.watch("pods", "demo")) as events:
            await collect(events, 1)


@pytest.mark.parametrize("retries", [0, -1])
def test_watch_rejects_retries_below_one(client: KubeClient, retries: int) -> None:
    with pytest.raises(ValueError, match="at least 1"):
        client.watch("pods", "demo", retries=retries)


def test_watch_rejects_unknown_resource(client: KubeClient) -> None:
    with pytest.raises(ValueError):
        client.watch("widgets", "demo")


# --- port-forward upgrade ------------------------------------------------------------------


async def test_portforward_upgrade_offers_v4(api: FakeApi, client: KubeClient) -> None:
    async def portforward(request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse(protocols=("v4.channel.k8s.io",))
        await ws.prepare(request)
        await ws.send_bytes(b"\x00" + (8080).to_bytes(2, "little"))
        await ws.close()
        return ws

    api.routes["/api/v1/namespaces/demo/pods/web/portforward"] = portforward
    ws = await client.open_portforward("demo", "web", [8080, 9090])
    try:
        assert ws.protocol == "v4.channel.k8s.io"
        msg = await ws.receive()
        assert msg.type == WSMsgType.BINARY and msg.data == b"\x00\x90\x1f"
    finally:
        await ws.close()
    request = api.requests[0]
    assert request.query.getall("ports") == ["8080", "9090"]
    assert request.headers["Sec-WebSocket-Protocol"] == "v4.channel.k8s.io"
    assert request.headers["Authorization"] == "Bearer good"


async def test_portforward_heartbeat_pings_and_a_missing_pong_closes_the_tunnel(
    api: FakeApi,
) -> None:
    """A server (or proxy) that stops answering: the ping goes out, no pong comes back, the
    tunnel is closed instead of hanging forever."""
    pings: list[WSMsgType] = []

    async def portforward(request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse(protocols=("v4.channel.k8s.io",), autoping=False)
        await ws.prepare(request)
        async for msg in ws:  # never answers the ping
            pings.append(msg.type)
        return ws

    api.routes["/api/v1/namespaces/demo/pods/web/portforward"] = portforward
    async with KubeClient(connection(api.url), heartbeat=0.2) as kube:
        ws = await kube.open_portforward("demo", "web", [8080])
        try:
            async with asyncio.timeout(10):
                msg = await ws.receive()
        finally:
            await ws.close()
    assert msg.type in (WSMsgType.ERROR, WSMsgType.CLOSED, WSMsgType.CLOSING)
    assert ws.closed
    assert WSMsgType.PING in pings


@pytest.mark.parametrize("off", [0, 0.0, None])
async def test_portforward_heartbeat_can_be_disabled(api: FakeApi, off: float | None) -> None:
    async def portforward(request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse(protocols=("v4.channel.k8s.io",))
        await ws.prepare(request)
        await ws.send_bytes(b"\x00" + (8080).to_bytes(2, "little"))
        await ws.close()
        return ws

    api.routes["/api/v1/namespaces/demo/pods/web/portforward"] = portforward
    async with KubeClient(connection(api.url), heartbeat=off) as kube:
        assert kube.heartbeat is None  # aiohttp gets heartbeat=None: no pings at all
        ws = await kube.open_portforward("demo", "web", [8080])
        try:
            msg = await ws.receive()
            assert msg.type == WSMsgType.BINARY and msg.data == b"\x00\x90\x1f"
        finally:
            await ws.close()


async def test_portforward_403_suggests_both_verbs(api: FakeApi, client: KubeClient) -> None:
    async def forbidden(request: web.Request) -> web.Response:
        return status_response(
            403,
            "Forbidden",
            'pods "web" is forbidden: User "viewer" cannot get resource "pods/portforward" in API'
            ' group "" in the namespace "demo"',
        )

    api.routes["/api/v1/namespaces/demo/pods/web/portforward"] = forbidden
    with pytest.raises(Forbidden) as err:
        await client.open_portforward("demo", "web", [8080])
    assert str(err.value) == (
        'user "viewer" may not get pods/portforward in namespace "demo" (403 Forbidden, context'
        ' "test"); ask your cluster admin for a Role granting both "get" and "create" on'
        " pods/portforward"
    )


async def test_portforward_404_and_400(api: FakeApi, client: KubeClient) -> None:
    async def missing(request: web.Request) -> web.Response:
        return status_response(
            404, "NotFound", 'pods "nope" not found', {"name": "nope", "kind": "pods"}
        )

    async def unscheduled(request: web.Request) -> web.Response:
        return status_response(400, "BadRequest", "pod pending-x does not have a host assigned")

    api.routes["/api/v1/namespaces/demo/pods/nope/portforward"] = missing
    api.routes["/api/v1/namespaces/demo/pods/pending-x/portforward"] = unscheduled
    with pytest.raises(NotFound) as err:
        await client.open_portforward("demo", "nope", [80])
    assert str(err.value) == 'pods "nope" not found in namespace "demo"'
    with pytest.raises(ApiError) as err2:
        await client.open_portforward("demo", "pending-x", [80])
    assert str(err2.value) == (
        "cannot port-forward to pod pending-x: pod pending-x does not have a host assigned"
    )


async def test_portforward_401_retries_once(api: FakeApi) -> None:
    async def portforward(request: web.Request) -> web.StreamResponse:
        if request.headers.get("Authorization") != "Bearer fresh":
            return status_response(401, "Unauthorized", "Unauthorized")
        ws = web.WebSocketResponse(protocols=("v4.channel.k8s.io",))
        await ws.prepare(request)
        await ws.close()
        return ws

    api.routes["/api/v1/namespaces/demo/pods/web/portforward"] = portforward
    tokens = Tokens("stale", "fresh")
    async with KubeClient(connection(api.url, tokens)) as kube:
        ws = await kube.open_portforward("demo", "web", [80])
        await ws.close()
    assert tokens.invalidations == 1


async def test_portforward_rejects_bad_ports(client: KubeClient) -> None:
    from portfwd.errors import InputError

    with pytest.raises(InputError):
        await client.open_portforward("demo", "web", [])
    with pytest.raises(InputError):
        await client.open_portforward("demo", "web", [70000])


# --- proxies ----------------------------------------------------------------------------------


async def test_proxy_url_is_used(api: FakeApi) -> None:
    async def version(request: web.Request) -> web.Response:
        return web.json_response({"gitVersion": "v1", "host": request.host})

    api.routes["/version"] = version
    conn = connection("http://kube.invalid:6443")
    conn = dataclasses.replace(conn, proxy_url=api.url)
    async with KubeClient(conn) as kube:
        answer = await kube.version()
    assert answer["host"].startswith("kube.invalid")  # the proxy got the absolute URL


async def test_proxy_password_is_not_shown() -> None:
    proxy = f"http://alice:s3cret@127.0.0.1:{refused_port()}"
    conn = dataclasses.replace(connection("http://kube.invalid:6443"), proxy_url=proxy)
    async with KubeClient(conn, connect_timeout=5) as kube:
        with pytest.raises(ClusterUnreachable) as err:
            await kube.version()
    assert err.value.cause == "proxy"
    assert str(err.value).startswith(
        f"cannot reach the proxy {proxy.replace(':s3cret', '')} for the Kubernetes API at"
    )
    socks = dataclasses.replace(conn, proxy_url="socks5://alice:s3cret@p:1080")
    with pytest.raises(ConfigError) as config_err:
        KubeClient(socks)
    assert str(config_err.value).startswith('proxy "socks5://alice@p:1080" for cluster "c1"')


def test_socks_proxy_rejected() -> None:
    from portfwd.errors import ConfigError

    conn = dataclasses.replace(connection("https://k:6443"), proxy_url="socks5://p:1080")
    with pytest.raises(ConfigError) as err:
        KubeClient(conn)
    assert str(err.value) == (
        'proxy "socks5://p:1080" for cluster "c1" is not supported: use an http:// or https://'
        " proxy"
    )


@pytest.mark.parametrize(
    ("host", "rules", "bypass"),
    [
        ("10.0.0.5", "10.0.0.0/8", True),
        ("10.0.0.5", "192.168.0.0/16", False),
        ("api.example.com", ".example.com", True),
        ("api.example.com", "example.com", True),
        ("example.com", "example.com:6443", True),
        ("badexample.com", "example.com", False),
        ("anything", "*", True),
        ("anything", "", False),
    ],
)
def test_no_proxy_rules(host: str, rules: str, bypass: bool) -> None:
    assert no_proxy(host, rules) is bypass


def test_env_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy:3128")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,.internal")
    assert env_proxy(URL("https://k8s.example.com:6443")) == "http://proxy:3128"
    assert env_proxy(URL("https://127.0.0.1:6443")) is None
    assert env_proxy(URL("https://api.internal:6443")) is None


def test_server_must_be_a_url() -> None:
    from portfwd.errors import ConfigError

    with pytest.raises(ConfigError) as err:
        KubeClient(connection("kube.example.com:6443"))
    assert str(err.value) == (
        'server "kube.example.com:6443" of cluster "c1" is not a URL; expected'
        " https://HOST:PORT in the kubeconfig"
    )


async def test_unknown_host_message(monkeypatch: pytest.MonkeyPatch) -> None:
    import aiohttp.connector

    async def no_such_host(self: Any, host: str, port: int = 0, family: int = 0) -> Any:
        raise OSError(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(aiohttp.connector.DefaultResolver, "resolve", no_such_host)
    url = "https://kube.example.invalid:6443"
    async with KubeClient(connection(url)) as kube:
        with pytest.raises(ClusterUnreachable) as err:
            await kube.version()
    assert str(err.value) == (
        f'cannot reach the Kubernetes API at {url} (context "test"): host'
        ' "kube.example.invalid" not found — check the server address in your kubeconfig, your'
        " network or VPN"
    )
    assert err.value.cause == "dns"


async def test_missing_api_is_named(api: FakeApi, client: KubeClient) -> None:
    async def plain_404(request: web.Request) -> web.Response:
        return web.Response(status=404, text="404 page not found")

    api.routes["/apis/discovery.k8s.io/v1/namespaces/demo/endpointslices"] = plain_404
    with pytest.raises(NotFound) as err:
        await client.list_endpointslices("demo", "echo")
    assert str(err.value) == (
        'the API server does not serve list endpointslices in namespace "demo" (404 Not Found,'
        ' context "test")'
    )


async def test_closing_the_client_ends_its_watches(api: FakeApi) -> None:
    WatchScript(api, [[pod_json("a")]], ["10"])  # lists, then a watch that never says more
    kube = KubeClient(connection(api.url))
    seen: list[str] = []

    async def consume() -> None:
        async with contextlib.aclosing(kube.watch("pods", "demo")) as events:
            async for event in events:
                seen.append(event.type)
                if event.type == SYNCED:
                    synced.set()

    synced = asyncio.Event()
    task = asyncio.create_task(consume())
    try:
        async with asyncio.timeout(10):
            await synced.wait()
            await kube.close()
            await task  # ends quietly, no error
    finally:
        task.cancel()
        await kube.close()
    assert seen == ["ADDED", SYNCED]
    with pytest.raises(ClusterUnreachable) as err:
        await kube.version()
    assert str(err.value) == ('the client for context "test" was closed (portfwd is shutting down)')


async def test_tls_server_name_is_verified(tmp_path: Path) -> None:
    pki = generate_pki(("localhost",))
    api = FakeApi()

    async def version(request: web.Request) -> web.Response:
        return web.json_response({"gitVersion": "v1"})

    api.routes["/version"] = version
    async for served in _serve(api, server_ssl_context(pki, tmp_path)):
        good = dataclasses.replace(
            connection(served.url, ca_pem=pki.ca.cert_pem), tls_server_name="localhost"
        )
        async with KubeClient(good) as kube:
            assert (await kube.version())["gitVersion"] == "v1"
        bad = dataclasses.replace(good, tls_server_name="api.other.example")
        async with KubeClient(bad) as kube:
            with pytest.raises(ClusterUnreachable) as err:
                await kube.version()
        assert "certificate verify failed (Hostname mismatch" in str(err.value)
        assert str(err.value).endswith(
            "(or set tls-server-name to a name in the server's certificate)"
        )


async def test_watch_events_split_and_joined_across_chunks(
    api: FakeApi, client: KubeClient
) -> None:
    big = pod_json("big", "11")
    big["metadata"]["annotations"] = {"blob": "x" * 300_000}
    payload = b"".join(
        json.dumps(e).encode() + b"\n"
        for e in (
            {"type": "ADDED", "object": big},
            {"type": "MODIFIED", "object": pod_json("a", "12")},
            {"type": "MODIFIED", "object": pod_json("a", "13")},
        )
    )

    async def pods(request: web.Request) -> web.StreamResponse:
        if request.query.get("watch") != "1":
            return web.json_response({"metadata": {"resourceVersion": "10"}, "items": []})
        resp = web.StreamResponse()
        await resp.prepare(request)
        for start in range(0, len(payload), 4093):  # odd sizes: lines straddle chunks
            await resp.write(payload[start : start + 4093])
        await asyncio.sleep(10)
        return resp

    api.routes["/api/v1/namespaces/demo/pods"] = pods
    async with contextlib.aclosing(client.watch("pods", "demo")) as events:
        got: list[WatchEvent] = []
        async with asyncio.timeout(10):
            async for event in events:
                got.append(event)
                if len(got) == 4:
                    break
    assert [e.type for e in got] == [SYNCED, "ADDED", "MODIFIED", "MODIFIED"]
    assert got[1].object["metadata"]["annotations"]["blob"] == "x" * 300_000
    assert got[3].object["metadata"]["resourceVersion"] == "13"


def test_client_sockets_notice_a_dead_peer_within_half_a_minute() -> None:
    """Idle watch streams have no ping on HTTP/1.1: the kernel's keepalive must find a NAT or
    VPN that silently dropped them (Linux: probes after 15 s idle, 3 x 5 s)."""
    import socket as socket_mod

    from portfwd.kube.http import keepalive_socket

    sock = keepalive_socket((socket_mod.AF_INET, socket_mod.SOCK_STREAM, 6, "", ("", 0)))
    try:
        assert sock.getsockopt(socket_mod.SOL_SOCKET, socket_mod.SO_KEEPALIVE) == 1
        if hasattr(socket_mod, "TCP_KEEPIDLE"):
            get = sock.getsockopt
            assert get(socket_mod.IPPROTO_TCP, socket_mod.TCP_KEEPIDLE) == 15
            assert get(socket_mod.IPPROTO_TCP, socket_mod.TCP_KEEPINTVL) == 5
            assert get(socket_mod.IPPROTO_TCP, socket_mod.TCP_KEEPCNT) == 3
    finally:
        sock.close()


# --- replies the client refuses ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "why"),
    [
        (b"<html>proxy login</html>", "not readable JSON"),
        (b"[" * 200_000 + b"]" * 200_000, "not readable JSON"),  # nested past the parser
    ],
    ids=["html", "nested"],
)
async def test_a_reply_that_is_not_json_is_one_line(
    api: FakeApi, client: KubeClient, body: bytes, why: str
) -> None:
    async def proxy_page(request: web.Request) -> web.Response:
        return web.Response(body=body, content_type="application/json")

    api.routes["/api/v1/namespaces/demo/pods/web"] = proxy_page
    with pytest.raises(ClusterUnreachable) as caught:
        await client.get_pod("demo", "web")
    message = str(caught.value)
    assert why in message and "\n" not in message, message
    assert 'context "test"' in message, message


async def test_a_reply_over_the_limit_is_refused_before_it_is_all_buffered(
    api: FakeApi, client: KubeClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    import portfwd.kube.http as http

    monkeypatch.setattr(http, "MAX_REPLY_BYTES", 1024 * 1024)
    sent = 0

    async def endless(request: web.Request) -> web.StreamResponse:
        nonlocal sent
        resp = web.StreamResponse(headers={"Content-Type": "application/json"})
        await resp.prepare(request)
        chunk = b" " * 65536
        with contextlib.suppress(ConnectionError):
            for _ in range(1000):  # 64 MiB unless the client stops reading
                await resp.write(chunk)
                sent += len(chunk)
        return resp

    api.routes["/api/v1/namespaces/demo/pods/web"] = endless
    with pytest.raises(ClusterUnreachable, match=r"over 1,048,576 bytes; refused"):
        await client.get_pod("demo", "web")
    assert sent < 64 * 1024 * 1024


async def test_a_declared_length_over_the_limit_is_refused_unread(
    api: FakeApi, client: KubeClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    import portfwd.kube.http as http

    monkeypatch.setattr(http, "MAX_REPLY_BYTES", 1000)

    async def big(request: web.Request) -> web.Response:
        return web.json_response({"pad": "x" * 5000, **pod_json("web")})

    api.routes["/api/v1/namespaces/demo/pods/web"] = big
    with pytest.raises(ClusterUnreachable, match=r"over 1,000 bytes; refused"):
        await client.get_pod("demo", "web")
