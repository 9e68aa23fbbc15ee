"""The HTTP face of the sandbox: discovery, REST, watch and the port-forward route.

Paths are parsed by hand (one catch-all per API group) rather than with one aiohttp route per
resource, because the Kubernetes URL grammar (`/namespaces/{ns}/{resource}/{name}/{sub}` vs
cluster-scoped and all-namespaces forms) is easier to get right in one place.
"""

from __future__ import annotations

import asyncio
import base64
import copy
import json
import ssl
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from portfwd.sandbox.auth import (
    ANONYMOUS,
    Unauthenticated,
    User,
    authenticate,
    authorize,
    forbidden_message,
)
from portfwd.sandbox.controls import Controls
from portfwd.sandbox.kubeproto import ProtoError, decode_access_review
from portfwd.sandbox.listoptions import (
    ListOptions,
    go_bool,
    list_resource_version_problem,
    parse_list_options,
    watch_resource_version_problem,
)
from portfwd.sandbox.manifests import deep_merge, scale_manifest
from portfwd.sandbox.patchcheck import replicas_problem, type_problem
from portfwd.sandbox.portforward import serve_portforward, validate_ports_query
from portfwd.sandbox.portforward_spdy import is_spdy_portforward, serve_portforward_spdy
from portfwd.sandbox.requestlog import bad_request_middleware
from portfwd.sandbox.selectors import (
    SelectorError,
    parse_field_selector,
    parse_label_selector,
    selector_string,
)
from portfwd.sandbox.store import RESOURCES, Event, Obj, ResourceInfo, TooOld
from portfwd.sandbox.tables import TABLE_MARKER, table_for

CLUSTER_KEY: web.AppKey[Controls] = web.AppKey("cluster")
USER_KEY: web.RequestKey[User] = web.RequestKey("user", User)

GROUPS = {"": "v1", "apps": "v1", "discovery.k8s.io": "v1", "authorization.k8s.io": "v1"}
VERSION = {
    "major": "1",
    "minor": "36",
    "gitVersion": "v1.36.0-portfwd-sandbox",
    "gitCommit": "0000000000000000000000000000000000000000",
    "gitTreeState": "clean",
    "buildDate": "2026-01-01T00:00:00Z",
    "goVersion": "go1.23.0",
    "compiler": "gc",
    "platform": "linux/amd64",
}
IDLE_CHECK = 5.0
MERGE_TYPES = (
    "application/merge-patch+json",
    "application/strategic-merge-patch+json",
)


def dumps(obj: Any) -> str:
    return json.dumps(obj, separators=(",", ":"))


def json_response(obj: Any, status: int = 200) -> web.Response:
    # The API server's Content-Type is `application/json`, without aiohttp's charset.
    return web.Response(body=dumps(obj).encode(), status=status, content_type="application/json")


def status_body(code: int, reason: str, message: str, details: Obj | None = None) -> Obj:
    """A metav1.Status; an empty `reason` is left out (as for an internal error)."""
    body: Obj = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
    }
    if reason:
        body["reason"] = reason
    if details is not None:
        body["details"] = details
    body["code"] = code
    return body


def status_response(
    code: int, reason: str, message: str, details: Obj | None = None
) -> web.Response:
    return json_response(status_body(code, reason, message, details), code)


def not_found(info: ResourceInfo, name: str) -> web.Response:
    details: Obj = {"name": name}
    if info.group:
        details["group"] = info.group
    details["kind"] = info.name
    return status_response(404, "NotFound", f'{info.qualified} "{name}" not found', details)


def no_such_path() -> web.Response:
    return status_response(404, "NotFound", "the server could not find the requested resource", {})


# -- middleware: authentication ------------------------------------------------------------
PUBLIC_PATHS = ("/version", "/healthz", "/livez", "/readyz")


@web.middleware
async def auth_middleware(request: web.Request, handler: Any) -> web.StreamResponse:
    cluster = request.app[CLUSTER_KEY]
    cluster.api_requests += 1  # tests and benches count what a client asked
    ssl_obj = request.transport.get_extra_info("ssl_object") if request.transport else None
    try:
        user = authenticate(
            request.headers, ssl_obj if isinstance(ssl_obj, ssl.SSLObject) else None, cluster.tokens
        )
    except Unauthenticated:
        return status_response(401, "Unauthorized", "Unauthorized")
    request[USER_KEY] = user
    if (
        user.name == ANONYMOUS
        and request.path not in PUBLIC_PATHS
        and (not request.path.startswith(("/api", "/apis")) or _is_discovery(request.path))
    ):
        return status_response(
            403,
            "Forbidden",
            f'forbidden: User "{ANONYMOUS}" cannot get path "{request.path}"',
            {},
        )
    result: web.StreamResponse = await handler(request)
    return result


def _is_discovery(path: str) -> bool:
    parts = [p for p in path.split("/") if p]
    return (parts[:1] == ["api"] and len(parts) <= 2) or (parts[:1] == ["apis"] and len(parts) <= 3)


# -- discovery -----------------------------------------------------------------------------
def _resource_entry(info: ResourceInfo) -> Obj:
    entry: Obj = {
        "name": info.name,
        "singularName": info.singular,
        "namespaced": info.namespaced,
        "kind": info.kind,
        "verbs": list(info.verbs),
    }
    if info.short_names:
        entry["shortNames"] = list(info.short_names)
    if info.categories:
        entry["categories"] = list(info.categories)
    return entry


def resource_list(group: str, version: str) -> Obj:
    resources: list[Obj] = []
    if group == "authorization.k8s.io":
        resources.append(
            {
                "name": "selfsubjectaccessreviews",
                "singularName": "selfsubjectaccessreview",
                "namespaced": False,
                "kind": "SelfSubjectAccessReview",
                "verbs": ["create"],
            }
        )
    for info in RESOURCES.values():
        if info.group != group or info.version != version:
            continue
        resources.append(_resource_entry(info))
        if info.name == "pods":
            resources.append(
                {
                    "name": "pods/portforward",
                    "singularName": "",
                    "namespaced": True,
                    "kind": "PodPortForwardOptions",
                    "verbs": ["create", "get"],
                }
            )
            resources.append(
                {
                    "name": "pods/log",
                    "singularName": "",
                    "namespaced": True,
                    "kind": "Pod",
                    "verbs": ["get"],
                }
            )
        if info.name in ("deployments", "statefulsets"):
            resources.append(
                {
                    "name": f"{info.name}/scale",
                    "singularName": "",
                    "namespaced": True,
                    "group": "autoscaling",
                    "version": "v1",
                    "kind": "Scale",
                    "verbs": ["get", "patch", "update"],
                }
            )
    gv = f"{group}/{version}" if group else version
    return {
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": gv,
        "resources": resources,
    }


def _group(name: str) -> Obj:
    gv = {"groupVersion": f"{name}/{GROUPS[name]}", "version": GROUPS[name]}
    return {"name": name, "versions": [gv], "preferredVersion": gv}


def version_info(cluster: Controls) -> Obj:
    """The version a real API server with the sandbox's behaviour would report: 1.36 (RBAC
    on port-forward upgrades as 1.35+ checks it), 1.34 when a WebSocket upgrade needs only
    `get`, 1.29 when the WebSocket-tunnelled SPDY is refused (before KEP-4006)."""
    minor = (
        "29" if cluster.refuse_websocket_spdy else "36" if cluster.websocket_needs_create else "34"
    )
    return {**VERSION, "minor": minor, "gitVersion": f"v1.{minor}.0-portfwd-sandbox"}


async def handle_version(request: web.Request) -> web.Response:
    return json_response(version_info(request.app[CLUSTER_KEY]))


async def handle_health(request: web.Request) -> web.Response:
    return web.Response(text="ok")


async def handle_api(request: web.Request) -> web.Response:
    host = request.host
    return json_response(
        {
            "kind": "APIVersions",
            "versions": ["v1"],
            "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": host}],
        }
    )


async def handle_api_v1(request: web.Request) -> web.Response:
    return json_response(resource_list("", "v1"))


async def handle_apis(request: web.Request) -> web.Response:
    groups = [_group(g) for g in GROUPS if g]
    return json_response({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})


async def handle_group(request: web.Request) -> web.Response:
    name = request.match_info["group"]
    if name not in GROUPS or not name:
        return no_such_path()
    return json_response({"kind": "APIGroup", "apiVersion": "v1", **_group(name)})


async def handle_group_version(request: web.Request) -> web.Response:
    group, version = request.match_info["group"], request.match_info["version"]
    if not group or GROUPS.get(group) != version:
        return no_such_path()
    return json_response(resource_list(group, version))


# -- resources -----------------------------------------------------------------------------
@dataclass
class Target:
    info: ResourceInfo
    ns: str | None
    name: str | None
    sub: str


def parse_target(group: str, version: str, tail: str) -> Target | None:
    parts = [p for p in tail.split("/") if p]
    ns: str | None = None
    if parts[:1] == ["namespaces"] and len(parts) >= 3:
        ns, parts = parts[1], parts[2:]
    if not parts or len(parts) > 3:
        return None
    info = RESOURCES.get(parts[0])
    if info is None or info.group != group or info.version != version:
        return None
    if ns is not None and not info.namespaced:
        return None
    name = parts[1] if len(parts) > 1 else None
    sub = parts[2] if len(parts) > 2 else ""
    if name is not None and info.namespaced and ns is None:
        return None
    return Target(info, ns, name, sub)


def _verb(request: web.Request, t: Target) -> str:
    m = request.method
    if m == "GET":
        if t.name is None:
            return "watch" if go_bool(request.query.get("watch")) else "list"
        return "get"
    return {"DELETE": "delete", "PATCH": "patch", "PUT": "update", "POST": "create"}.get(
        m, m.lower()
    )


def _is_upgrade_request(request: web.Request) -> bool:
    """httpstream.IsUpgradeRequest: a Connection header that mentions upgrade."""
    return any("upgrade" in v.lower() for v in request.headers.getall("Connection", []))


def _is_websocket_upgrade(request: web.Request) -> bool:
    return request.headers.get("Upgrade", "").strip().lower() == "websocket"


async def handle_core(request: web.Request) -> web.StreamResponse:
    return await _handle_resource(request, "", "v1", request.match_info["tail"])


async def handle_grouped(request: web.Request) -> web.StreamResponse:
    return await _handle_resource(
        request,
        request.match_info["group"],
        request.match_info["version"],
        request.match_info["tail"],
    )


async def _handle_resource(
    request: web.Request, group: str, version: str, tail: str
) -> web.StreamResponse:
    cluster = request.app[CLUSTER_KEY]
    t = parse_target(group, version, tail)
    if t is None:
        return no_such_path()
    user: User = request[USER_KEY]
    verb = _verb(request, t)
    if not authorize(user, verb, t.info.name, t.sub, t.ns):
        message = forbidden_message(
            user, verb, t.info.qualified, t.info.name, t.info.group, t.sub, t.ns, t.name
        )
        details: Obj = {}
        if t.name:
            details["name"] = t.name
        if t.info.group:
            details["group"] = t.info.group
        details["kind"] = t.info.name
        return status_response(403, "Forbidden", message, details)
    if t.sub == "portforward" and t.info.name == "pods" and t.name and t.ns:
        if request.method not in ("GET", "POST"):
            return _method_not_allowed(request)
        if (
            request.method == "GET"
            and cluster.websocket_needs_create
            and _is_websocket_upgrade(request)
            and not authorize(user, "create", "pods", "portforward", t.ns)
        ):
            # AuthorizePodWebsocketUpgradeCreatePermission (beta, on since 1.35): RBAC passed
            # `get`, then the upgrade wants `create` too, and says so without a reason
            # (docs/protocols.md, section 4).
            return status_response(
                403,
                "Forbidden",
                f'pods "{t.name}" is forbidden: ',
                {"name": t.name, "kind": "pods"},
            )
        return await _portforward(request, cluster, t.ns, t.name)
    if t.sub == "scale" and t.info.name in ("deployments", "statefulsets") and t.name and t.ns:
        return await _scale(request, cluster, t)
    if t.sub == "log" and t.info.name == "pods" and t.name and t.ns and request.method == "GET":
        if cluster.store.get("pods", t.ns, t.name) is None:
            return not_found(t.info, t.name)
        text, problem = cluster.pod_log(t.ns, t.name, request.query.get("container"))
        if problem:
            return status_response(400, "BadRequest", problem)
        lines = request.query.get("tailLines", "")
        if lines.isdigit():
            kept = text.splitlines(keepends=True)
            text = "".join(kept[len(kept) - int(lines) :] if int(lines) else [])
        if request.query.get("follow") not in ("true", "1"):
            return web.Response(text=text, content_type="text/plain")
        return await _follow_log(request, cluster, t.ns, t.name, text)
    if t.sub:
        return no_such_path()
    if request.method == "GET":
        if t.name is None:
            # The query's numbers are converted first, then the selectors parsed (both in
            # the handler); a list's resourceVersion is checked later, by the storage layer.
            opts = parse_list_options(request.query)
            if isinstance(opts, str):
                return status_response(400, "BadRequest", opts)
            try:
                label_pred = parse_label_selector(request.query.get("labelSelector"))
                field_pred = parse_field_selector(request.query.get("fieldSelector"))
            except SelectorError as exc:
                return status_response(400, "BadRequest", str(exc))
            if verb == "watch":
                return await _watch(request, cluster, t, label_pred, field_pred, opts)
            bad_rv = list_resource_version_problem(request.query.get("resourceVersion"))
            if bad_rv is not None:
                return status_response(400, "BadRequest", bad_rv)
            items = [
                o
                for o in cluster.store.list(t.info.name, t.ns)
                if label_pred(o["metadata"].get("labels", {})) and field_pred(o)
            ]
            page = _paginate(request, cluster, items, opts.limit)
            if isinstance(page, web.Response):
                return page
            items, rv, more = page
            return _list_response(request, t.info, items, rv, more)
        obj = cluster.store.get(t.info.name, t.ns, t.name)
        if obj is None:
            return not_found(t.info, t.name)
        return _object_response(request, t.info, obj)
    if t.name is None:
        return _method_not_allowed(request)
    if request.method == "DELETE" and t.info.name == "pods" and t.ns:
        return await _delete_pod(request, cluster, t.ns, t.name)
    if request.method == "DELETE" and t.ns and "delete" in t.info.verbs:
        last = cluster.delete(t.info.name, t.ns, t.name)
        if last is None:
            return not_found(t.info, t.name)
        return json_response(last)
    if request.method == "PATCH" and t.info.name in (
        "pods",
        "services",
        "deployments",
        "statefulsets",
        "namespaces",
    ):
        return await _patch(request, cluster, t)
    return _method_not_allowed(request)


async def _follow_log(
    request: web.Request, cluster: Controls, ns: str, name: str, text: str
) -> web.StreamResponse:
    """`follow=true`: the log so far, then each new line as the pod writes it (chunked text),
    until the pod is gone or the reader goes away."""
    pod = cluster.store.get("pods", ns, name)
    assert pod is not None
    resp = web.StreamResponse(headers={"Content-Type": "text/plain"})
    resp.enable_chunked_encoding()
    await resp.prepare(request)
    try:
        await resp.write(text.encode())
        async for chunk in cluster.follow_pod_log(ns, name, pod["metadata"]["uid"]):
            transport = request.transport
            if transport is None or transport.is_closing():
                break
            await resp.write(chunk)
        await resp.write_eof()
    except (ConnectionError, RuntimeError):
        pass  # the reader went away
    return resp


def _method_not_allowed(request: web.Request) -> web.Response:
    return status_response(
        405,
        "MethodNotAllowed",
        "the server does not allow this method on the requested resource",
        {},
    )


def _wants_table(request: web.Request) -> bool:
    return TABLE_MARKER in request.headers.get("Accept", "")


def _strip_type(obj: Obj) -> Obj:
    return {k: v for k, v in obj.items() if k not in ("kind", "apiVersion")}


CONTINUE_EXPIRED = (
    "The provided continue parameter is too old to display a consistent list result. You can "
    "start a new list without the continue parameter, or use the continue token in this "
    "response to retrieve the remainder of the results. Continuing with the provided token "
    "results in an inconsistent list - objects that were created, modified, or deleted between "
    "the time the first chunk was returned and now may show up in the list."
)


def _paginate(
    request: web.Request, cluster: Controls, items: list[Obj], limit: int
) -> tuple[list[Obj], str, tuple[str, int] | None] | web.Response:
    """`limit` / `continue` chunking: (page, resourceVersion, (next token, remaining)).

    The token carries the list's resourceVersion and the last key served; a token older
    than the store's compaction gets 410 Expired, as from a real server.
    """
    rv = cluster.store.rv
    token = request.query.get("continue")
    if token:
        try:
            data = json.loads(base64.urlsafe_b64decode(token.encode()))
            rv = int(data["rv"])
            start = (str(data["start"][0]), str(data["start"][1]))
        except (ValueError, KeyError, TypeError, IndexError):
            return status_response(400, "BadRequest", f"continue key is not valid: {token}")
        if rv < cluster.store.compacted_rv:
            return status_response(410, "Expired", CONTINUE_EXPIRED)
        items = [o for o in items if _key(o) > start]
    if limit <= 0 or len(items) <= limit:
        return items, str(rv), None
    page = items[:limit]
    nxt = base64.urlsafe_b64encode(
        json.dumps({"v": "meta.k8s.io/v1", "rv": rv, "start": _key(page[-1])}).encode()
    ).decode()
    return page, str(rv), (nxt, len(items) - limit)


def _key(obj: Obj) -> tuple[str, str]:
    """The store's sort key: (namespace, name)."""
    meta = obj["metadata"]
    return (str(meta.get("namespace", "")), str(meta["name"]))


def _list_response(
    request: web.Request,
    info: ResourceInfo,
    items: list[Obj],
    rv: str,
    more: tuple[str, int] | None = None,
) -> web.Response:
    meta: Obj = {"resourceVersion": rv}
    if more is not None:
        meta["continue"], meta["remainingItemCount"] = more
    if _wants_table(request):
        table = table_for(info, items, rv, request.query.get("includeObject"))
        table["metadata"] = meta
        return json_response(table)
    return json_response(
        {
            "kind": f"{info.kind}List",
            "apiVersion": info.api_version,
            "metadata": meta,
            "items": [_strip_type(o) for o in items],
        }
    )


def _object_response(request: web.Request, info: ResourceInfo, obj: Obj) -> web.Response:
    if _wants_table(request):
        rv = obj["metadata"]["resourceVersion"]
        return json_response(table_for(info, [obj], rv, request.query.get("includeObject")))
    return json_response(obj)


async def _read_json(request: web.Request) -> Obj | web.Response:
    try:
        body = await request.json(loads=json.loads) if request.can_read_body else {}
    except (ValueError, UnicodeDecodeError) as exc:
        return status_response(
            400, "BadRequest", f"the body of the request was in an unknown format: {exc}"
        )
    except RecursionError:  # "[[[[..." within client_max_size: a bad request, not a 500
        return status_response(
            400, "BadRequest", "the body of the request was in an unknown format: nested too deeply"
        )
    if not isinstance(body, dict):
        return status_response(400, "BadRequest", "the body of the request must be a JSON object")
    return body


async def _patch_body(request: web.Request) -> Obj | web.Response:
    ctype = request.content_type
    if ctype not in MERGE_TYPES:
        return status_response(
            415,
            "UnsupportedMediaType",
            f"the body of the request was in an unknown format - accepted media types include: "
            f"{', '.join(MERGE_TYPES)}",
        )
    return await _read_json(request)


async def _patch(request: web.Request, cluster: Controls, t: Target) -> web.Response:
    assert t.name is not None
    if cluster.store.get(t.info.name, t.ns, t.name) is None:
        return not_found(t.info, t.name)
    body = await _patch_body(request)
    if isinstance(body, web.Response):
        return body
    strategic = request.content_type == "application/strategic-merge-patch+json"
    before = cluster.store.get(t.info.name, t.ns, t.name) or {}
    try:
        merged = deep_merge(copy.deepcopy(before), body, strategic=strategic)
    except (KeyError, TypeError, AttributeError):  # a strategic list item without its key
        return status_response(400, "BadRequest", "the patch cannot be applied to the object")
    problem = type_problem(t.info.kind, before, merged)
    if problem is not None:
        return status_response(400, "BadRequest", problem)
    spec = merged.get("spec")
    if t.info.name in ("deployments", "statefulsets") and isinstance(spec, dict):
        too_many = replicas_problem(t.info.kind, t.name, spec.get("replicas"))
        if too_many is not None:
            return status_response(422, "Invalid", too_many)
    obj = cluster.apply_patch(t.info.name, t.ns or "", t.name, body, strategic=strategic)
    if t.ns:
        cluster.resync(t.ns)
    return json_response(cluster.store.get(t.info.name, t.ns, t.name) or obj)


async def _scale(request: web.Request, cluster: Controls, t: Target) -> web.Response:
    assert t.name is not None and t.ns is not None
    ns, name = t.ns, t.name
    obj = cluster.store.get(t.info.name, ns, name)
    if obj is None:
        return not_found(t.info, name)

    def current() -> Obj:
        cur = cluster.store.get(t.info.name, ns, name) or obj
        return scale_manifest(cur, selector_string(cur["spec"]["selector"]["matchLabels"]))

    if request.method == "GET":
        return json_response(current())
    if request.method == "PATCH":
        body = await _patch_body(request)
        if isinstance(body, web.Response):
            return body
        merged = deep_merge(current(), body)
    elif request.method == "PUT":
        body = await _read_json(request)
        if isinstance(body, web.Response):
            return body
        merged = body
    else:
        return _method_not_allowed(request)
    spec = merged.get("spec") if isinstance(merged, dict) else None
    replicas = spec.get("replicas") if isinstance(spec, dict) else None
    if not isinstance(replicas, int) or isinstance(replicas, bool) or replicas < 0:
        return status_response(
            422, "Invalid", f'Scale.autoscaling "{t.name}" is invalid: spec.replicas: Invalid value'
        )
    too_many = replicas_problem("Scale.autoscaling", t.name, replicas)
    if too_many is not None:
        return status_response(422, "Invalid", too_many)
    cluster.apply_patch(t.info.name, t.ns, t.name, {"spec": {"replicas": replicas}})
    return json_response(current())


async def _delete_pod(request: web.Request, cluster: Controls, ns: str, name: str) -> web.Response:
    info = RESOURCES["pods"]
    if cluster.store.get("pods", ns, name) is None:
        return not_found(info, name)
    grace: Any = request.query.get("gracePeriodSeconds")
    if request.can_read_body:
        body = await _read_json(request)
        if isinstance(body, dict):
            grace = body.get("gracePeriodSeconds", grace)
    if grace is not None and str(grace) == "0":
        last = cluster.force_delete_pod(ns, name)
    else:
        last = cluster.terminate_pod(ns, name)
    if last is None:
        return json_response(
            {
                "kind": "Status",
                "apiVersion": "v1",
                "metadata": {},
                "status": "Success",
                "details": {"name": name, "kind": "pods", "uid": ""},
            }
        )
    return json_response(last)


async def _portforward(
    request: web.Request, cluster: Controls, ns: str, name: str
) -> web.StreamResponse:
    # A real API server converts `ports` before it looks the pod up (400 beats 404).
    bad_ports = validate_ports_query(request)
    if bad_ports is not None:
        return bad_ports
    pod = cluster.store.get("pods", ns, name)
    if pod is None:
        return not_found(RESOURCES["pods"], name)
    node = pod["spec"].get("nodeName")
    if not node:
        return status_response(400, "BadRequest", f"pod {name} does not have a host assigned")
    if not _is_upgrade_request(request):
        # The API server's proxy answers a plain request itself, before dialling anything.
        return status_response(400, "BadRequest", "Upgrade request required")
    if node in cluster.unreachable_nodes:  # the API server cannot reach that kubelet
        node_ip = pod.get("status", {}).get("hostIP", "")
        return status_response(
            500,
            "InternalError",
            f"error dialing backend: dial tcp {node_ip}:10250: connect: connection refused",
        )
    uid = pod["metadata"]["uid"]

    async def dial(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        return await cluster.dial(ns, name, uid, port)

    spdy = is_spdy_portforward(request)
    websocket = _is_websocket_upgrade(request)
    if websocket or spdy:  # an upgrade (not a plain GET replayed for its error text)
        cluster.portforward_attempts.append(
            ("websocket-spdy" if websocket else "spdy") if spdy else "v4"
        )

    def upgraded() -> None:
        cluster.portforward_requests += 1
        if spdy:
            cluster.spdy_sessions += 1

    if websocket and cluster.fail_websocket_upgrades is not None:
        return status_response(500, "InternalError", cluster.fail_websocket_upgrades)
    if spdy and not websocket and cluster.refuse_spdy:
        # A proxy in front that does not pass SPDY upgrades on: the Upgrade headers never
        # reach the kubelet, whose handshake then refuses the plain POST.
        return web.Response(
            status=400,
            text="unable to upgrade: missing upgrade headers in request\n",
            content_type="text/plain",
        )
    if spdy and websocket and cluster.refuse_websocket_spdy:
        spdy = False  # an API server before KEP-4006: the kubelet sees an unknown subprotocol
    # The kubelet's error text carries an empty uid on this path ("uid : failed ..."),
    # as measured on a real cluster (docs/protocols.md, section 4).
    with cluster.upgraded_connection(node, request):
        if spdy:  # kubectl: SPDY tunnelled in a WebSocket, or plain SPDY
            return await serve_portforward_spdy(
                request,
                pod_name=name,
                pod_uid="",
                dial=dial,
                close_linger=cluster.close_linger,
                on_upgrade=upgraded,
                on_tunnel=lambda orphan: cluster.tunnelled(request, orphan),
                error_after_close=cluster.crio_error_order,
            )
        return await serve_portforward(
            request,
            pod_name=name,
            pod_uid="",
            dial=dial,
            close_linger=cluster.close_linger,
            on_upgrade=upgraded,
        )


# -- watch ---------------------------------------------------------------------------------
async def _watch(
    request: web.Request,
    cluster: Controls,
    t: Target,
    label_pred: Any,
    field_pred: Any,
    opts: ListOptions,
) -> web.StreamResponse:
    store = cluster.store
    info = t.info
    table = _wants_table(request)
    include = request.query.get("includeObject")
    rv_text = request.query.get("resourceVersion", "")
    since: int | None = None
    if rv_text not in ("", "0"):
        bad = watch_resource_version_problem(rv_text)
        if bad is not None:
            # The watch cache parses it and answers an internal error, without a reason.
            return status_response(500, "", bad)
        since = int(rv_text)
    bookmarks = opts.allow_bookmarks
    send_initial = opts.send_initial_events
    deadline: float | None = None
    loop = asyncio.get_running_loop()
    if opts.timeout_seconds:  # 0 or absent: the server's own (here: none); negative: at once
        deadline = loop.time() + opts.timeout_seconds

    resp = web.StreamResponse(
        status=200,
        headers={"Content-Type": "application/json", "Cache-Control": "no-cache, private"},
    )
    resp.enable_chunked_encoding()

    def matches(obj: Obj | None) -> bool:
        return obj is not None and label_pred(obj["metadata"].get("labels", {})) and field_pred(obj)

    def wire(obj: Obj) -> Obj:
        if table:
            return table_for(info, [obj], obj["metadata"]["resourceVersion"], include)
        return obj

    async def send(kind: str, obj: Obj) -> None:
        await resp.write((dumps({"type": kind, "object": wire(obj)}) + "\n").encode())

    async def bookmark(initial_end: bool = False) -> None:
        meta: Obj = {"resourceVersion": str(store.rv)}
        if initial_end:
            meta["annotations"] = {"k8s.io/initial-events-end": "true"}
        await resp.write(
            (
                dumps(
                    {
                        "type": "BOOKMARK",
                        "object": {
                            "kind": info.kind,
                            "apiVersion": info.api_version,
                            "metadata": meta,
                        },
                    }
                )
                + "\n"
            ).encode()
        )

    async def send_event(ev: Event) -> None:
        was, now = matches(ev.old), matches(ev.new)
        if ev.type == "DELETED":
            if was:
                await send("DELETED", ev.new)
        elif ev.type == "ADDED":
            if now:
                await send("ADDED", ev.new)
        elif was and now:
            await send("MODIFIED", ev.new)
        elif now:
            await send("ADDED", ev.new)
        elif was:
            await send("DELETED", ev.new)

    try:
        watcher, replay = store.watch(info.name, t.ns, since)
    except TooOld as exc:
        await resp.prepare(request)
        await resp.write(
            (
                dumps({"type": "ERROR", "object": status_body(410, "Expired", str(exc))}) + "\n"
            ).encode()
        )
        await resp.write_eof()
        return resp
    try:
        initial = [o for o in store.list(info.name, t.ns) if matches(o)] if since is None else []
        await resp.prepare(request)
        for obj in initial:
            await send("ADDED", obj)
        if send_initial and bookmarks:
            await bookmark(initial_end=True)
        for ev in replay:
            await send_event(ev)
        while True:
            # Wake up now and then even without events: to send bookmarks, and to notice a
            # client that went away (aiohttp does not cancel the handler for us).
            timeout = cluster.bookmark_interval if bookmarks else IDLE_CHECK
            if deadline is not None:
                left = deadline - loop.time()
                if left <= 0:
                    break
                timeout = min(timeout, left)
            try:
                item = await asyncio.wait_for(watcher.queue.get(), timeout)
            except TimeoutError:
                if request.transport is None or request.transport.is_closing():
                    break
                if bookmarks:
                    await bookmark()
                continue
            if item is None:
                break
            await send_event(item)
        await resp.write_eof()
    except ConnectionResetError:
        pass  # the client went away: nothing to tell anyone
    finally:
        store.unwatch(watcher)
    return resp


async def handle_access_review(request: web.Request) -> web.Response:
    """`kubectl auth can-i`: answer from the same fixed RBAC the other routes use."""
    if request.content_type == "application/vnd.kubernetes.protobuf":
        try:
            spec = decode_access_review(await request.read())
        except ProtoError as exc:
            return status_response(400, "BadRequest", f"cannot decode the review: {exc}")
    else:
        body = await _read_json(request)
        if isinstance(body, web.Response):
            return body
        spec = body.get("spec") or {}
    attrs = spec.get("resourceAttributes")
    user = request[USER_KEY]
    if isinstance(attrs, dict):
        resource = str(attrs.get("resource", ""))
        info = RESOURCES.get(resource)
        # A namespace given for a cluster-scoped resource is ignored, as RBAC does.
        ns = attrs.get("namespace") or None if info is None or info.namespaced else None
        allowed = authorize(
            user, str(attrs.get("verb", "")), resource, str(attrs.get("subresource", "")), ns
        )
    else:
        # Non-resource URLs (/healthz, /version ...): readable by every authenticated user.
        allowed = (spec.get("nonResourceAttributes") or {}).get("verb") == "get"
    status: Obj = {"allowed": allowed}
    if allowed:
        status["reason"] = "allowed by the portfwd sandbox's fixed RBAC"
    return json_response(
        {
            "kind": "SelfSubjectAccessReview",
            "apiVersion": "authorization.k8s.io/v1",
            "metadata": {"creationTimestamp": None},
            "spec": spec,
            "status": status,
        },
        201,
    )


def build_app(cluster: Controls) -> web.Application:
    app = web.Application(
        middlewares=[bad_request_middleware, auth_middleware], client_max_size=4 * 1024 * 1024
    )
    app[CLUSTER_KEY] = cluster
    app.router.add_get("/version", handle_version)
    app.router.add_get("/version/", handle_version)
    for path in ("/healthz", "/livez", "/readyz"):
        app.router.add_get(path, handle_health)
    app.router.add_get("/api", handle_api)
    app.router.add_get("/api/", handle_api)
    app.router.add_get("/api/v1", handle_api_v1)
    app.router.add_get("/api/v1/", handle_api_v1)
    app.router.add_get("/apis", handle_apis)
    app.router.add_get("/apis/", handle_apis)
    app.router.add_route("*", "/api/v1/{tail:.+}", handle_core)
    app.router.add_post(
        "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews", handle_access_review
    )
    app.router.add_get("/apis/{group}", handle_group)
    app.router.add_get("/apis/{group}/", handle_group)
    app.router.add_get("/apis/{group}/{version}", handle_group_version)
    app.router.add_get("/apis/{group}/{version}/", handle_group_version)
    app.router.add_route("*", "/apis/{group}/{version}/{tail:.+}", handle_grouped)
    return app
