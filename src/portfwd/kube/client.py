"""The Kubernetes API client: REST get/list, watches and port-forward upgrades of one cluster.

:class:`KubeClient` is the one object the rest of portfwd holds per (kubeconfig, context). The
HTTP machinery it stands on (session, TLS, credentials, error mapping) is `http.py`; watch
streams are `watch.py`; port-forward upgrades (WebSocket and plain SPDY) are `upgrade.py`.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Sequence
from typing import Any

import aiohttp

from portfwd.constants import (
    HEADER_PROTOCOL_VERSION,
    LABEL_SERVICE_NAME,
    PORTFORWARD_PROTOCOL,
    PORTFORWARD_V4_BINARY,
    SPDY_TUNNEL_PROTOCOL,
    SPDY_UPGRADE,
)
from portfwd.errors import InputError
from portfwd.kube import kinds, upgrade, watch
from portfwd.kube.errors import ApiError, Expired
from portfwd.kube.http import HttpCore
from portfwd.kube.objects import EndpointSlice, Namespace, Pod, Service, Workload
from portfwd.kube.watch import WatchEvent

_LIST_PAGE = 500


def resource_path(resource: str, ns: str | None, name: str | None = None) -> str:
    """The REST path of an API resource (`pods`), in a namespace, or of one object."""
    return kinds.by_resource(resource).path(ns, name)


class KubeClient(HttpCore):
    """Talks to one cluster (one kubeconfig context): REST, watches, port-forward upgrades."""

    async def _get(self, resource: str, ns: str | None, name: str) -> dict[str, Any]:
        data = await self.request_json(
            "GET", resource_path(resource, ns, name), ns=ns, what=f'get {resource} "{name}"'
        )
        if not isinstance(data, dict):
            raise ApiError(f"unexpected answer to get {resource}", status=200)
        return data

    async def list_raw(
        self,
        resource: str,
        ns: str | None,
        *,
        label_selector: str | None = None,
        field_selector: str | None = None,
    ) -> tuple[list[dict[str, Any]], str]:
        """All items (paged by 500) and the list's resourceVersion."""
        path = resource_path(resource, ns)
        scope = f' in namespace "{ns}"' if ns else ""
        what = f"list {resource}{scope}"
        items: list[dict[str, Any]] = []
        params: dict[str, str] = {"limit": str(_LIST_PAGE)}
        if label_selector:
            params["labelSelector"] = label_selector
        if field_selector:
            params["fieldSelector"] = field_selector
        paged_restart = False
        while True:
            try:
                data = await self.request_json("GET", path, params=params, ns=ns, what=what)
            except Expired:
                if paged_restart:
                    raise
                # The continue token expired between pages: list again in one go, as client-go.
                paged_restart = True
                items.clear()
                params.pop("continue", None)
                params.pop("limit", None)
                continue
            if not isinstance(data, dict):
                raise ApiError(f"unexpected answer to {what}", status=200)
            items.extend(i for i in data.get("items") or [] if isinstance(i, dict))
            meta = data.get("metadata") or {}
            token = meta.get("continue") if isinstance(meta, dict) else None
            if not token:
                rv = meta.get("resourceVersion", "") if isinstance(meta, dict) else ""
                return items, str(rv or "")
            params["continue"] = str(token)

    async def version(self) -> dict[str, Any]:
        data = await self.request_json("GET", "/version", what="get the server version")
        return data if isinstance(data, dict) else {}

    async def access_review(
        self,
        verb: str,
        resource: str,
        *,
        group: str = "",
        subresource: str = "",
        ns: str | None = None,
    ) -> tuple[bool, str]:
        """May this context's user do `verb` on `resource` (a SelfSubjectAccessReview, what
        `kubectl auth can-i` asks)? (allowed, the server's reason or denial text)."""
        attributes: dict[str, str] = {"verb": verb, "resource": resource}
        if group:
            attributes["group"] = group
        if subresource:
            attributes["subresource"] = subresource
        if ns:
            attributes["namespace"] = ns
        review = {
            "apiVersion": "authorization.k8s.io/v1",
            "kind": "SelfSubjectAccessReview",
            "spec": {"resourceAttributes": attributes},
        }
        data = await self.request_json(
            "POST",
            "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews",
            json_body=review,
            what="create selfsubjectaccessreviews",
        )
        status = data.get("status") if isinstance(data, dict) else None
        if not isinstance(status, dict):
            raise ApiError("unexpected answer to a SelfSubjectAccessReview", status=201)
        reason = status.get("reason") or status.get("evaluationError") or ""
        return status.get("allowed") is True, str(reason)

    async def list_namespaces(self) -> list[Namespace]:
        items, _ = await self.list_raw("namespaces", None)
        return [Namespace.from_dict(i) for i in items]

    async def get_namespace(self, name: str) -> Namespace:
        data = await self.request_json(
            "GET", resource_path("namespaces", None, name), what=f'get namespace "{name}"'
        )
        return Namespace.from_dict(data)

    async def get_pod(self, ns: str, name: str) -> Pod:
        return Pod.from_dict(await self._get("pods", ns, name))

    async def list_pods(self, ns: str, label_selector: str | None = None) -> list[Pod]:
        items, _ = await self.list_raw("pods", ns, label_selector=label_selector)
        return [Pod.from_dict(i) for i in items]

    async def get_service(self, ns: str, name: str) -> Service:
        return Service.from_dict(await self._get("services", ns, name))

    async def list_services(self, ns: str) -> list[Service]:
        items, _ = await self.list_raw("services", ns)
        return [Service.from_dict(i) for i in items]

    async def list_endpointslices(self, ns: str, service: str | None = None) -> list[EndpointSlice]:
        selector = f"{LABEL_SERVICE_NAME}={service}" if service is not None else None
        items, _ = await self.list_raw("endpointslices", ns, label_selector=selector)
        return [EndpointSlice.from_dict(i) for i in items]

    @staticmethod
    def _workload(kind: str) -> kinds.Kind:
        """The workload kind `kind` names (singular or plural: `deployment`, `deployments`)."""
        key = kind.lower()
        found = next((k for k in kinds.WORKLOADS if key in (k.name, k.plural)), None)
        if found is None:
            raise ValueError(f"unknown workload kind {kind!r}")
        return found

    async def get_workload(self, kind: str, ns: str, name: str) -> Workload:
        found = self._workload(kind)
        workload: Workload = found.parse(await self._get(found.plural, ns, name))
        return workload

    async def list_workloads(self, kind: str, ns: str) -> list[Workload]:
        found = self._workload(kind)
        items, _ = await self.list_raw(found.plural, ns)
        return [found.parse(i) for i in items]

    # --- watch ---------------------------------------------------------------------------

    def watch(
        self,
        resource: str,
        ns: str | None,
        *,
        label_selector: str | None = None,
        field_selector: str | None = None,
        retries: int | None = None,
    ) -> AsyncGenerator[WatchEvent, None]:
        """List, then watch; an informer's event stream without its cache API.

        Events: ADDED for every object of the first list, then ADDED / MODIFIED / DELETED /
        BOOKMARK as the server sends them. After every (re)list a synthetic ``SYNCED`` event
        (object ``{"resourceVersion": rv}``) says "your view is now complete". A dropped
        stream is resumed from the last resourceVersion seen; when that is too old (410 Gone,
        in-stream ERROR event or HTTP status) the resource is listed again and the difference
        from what was already reported is emitted as ADDED / MODIFIED / DELETED events, so a
        consumer never misses a deletion. A watch request that cannot connect (API server
        restarting, network blip) is retried with backoff for about 6 s, then the
        ClusterUnreachable is raised; a failing (re)list, TLS failures and API errors (403 ...)
        are raised at once. The consumer decides when to start a new watch.

        `retries` is how many resumes in a row may fail (no event in between) before the
        ClusterUnreachable is raised (default 6, about 6 s). With 1 the first failed resume
        raises: a consumer running its own backoff learns within a fraction of a second that
        the API server is gone (a stream that drops after delivering events is resumed once
        at once, after 0.1 to 0.3 s).

        Use it as ``async with contextlib.aclosing(client.watch(...)) as events:`` so the
        stream is closed as soon as the consumer stops.
        """
        path = resource_path(resource, ns)  # validates `resource` before the first await
        if retries is not None and retries < 1:
            raise ValueError(f"watch retries must be at least 1, got {retries}")
        limit = watch.WATCH_RETRIES if retries is None else retries
        return watch.watch_events(
            self, self.list_raw, resource, path, ns, label_selector, field_selector, limit
        )

    # --- port-forward --------------------------------------------------------------------

    @staticmethod
    def portforward_path(ns: str, pod: str) -> str:
        return resource_path("pods", ns, pod) + "/portforward"

    async def open_portforward(
        self, ns: str, pod: str, ports: Sequence[int]
    ) -> aiohttp.ClientWebSocketResponse:
        """Upgrade GET .../pods/{pod}/portforward to a `v4.channel.k8s.io` WebSocket.

        The caller owns the returned WebSocket and must close it. Failures of the upgrade
        (403, 404, pod not scheduled ...) raise ApiError subclasses with the server's reason.
        """
        if not ports or any(not 1 <= p <= 65535 for p in ports):
            raise InputError(f"port-forward needs ports in 1..65535, got {list(ports)}")
        return await upgrade.open_websocket(
            self,
            self.portforward_path(ns, pod),
            [("ports", str(p)) for p in ports],
            PORTFORWARD_V4_BINARY,
            what=f'port-forward to pod "{pod}"',
            ns=ns,
            pod=pod,
            accept_none=True,
            heartbeat=self.heartbeat,
        )

    async def open_spdy_websocket(self, ns: str, pod: str) -> aiohttp.ClientWebSocketResponse:
        """A WebSocket carrying a SPDY port-forward session (KEP-4006, kubectl 1.31+'s default).

        No `ports` query: streams name their port. No WebSocket pings: SPDY has its own.
        """
        return await upgrade.open_websocket(
            self,
            self.portforward_path(ns, pod),
            [],
            SPDY_TUNNEL_PROTOCOL,
            what=f'port-forward to pod "{pod}" (SPDY over WebSocket)',
            ns=ns,
            pod=pod,
        )

    async def open_spdy_upgrade(self, ns: str, pod: str) -> upgrade.RawUpgrade:
        """A connection upgraded to plain SPDY/3.1 by POST (what kubectl falls back to)."""
        what = f'port-forward to pod "{pod}" (SPDY)'
        upgraded = await upgrade.open_raw_upgrade(
            self,
            self.portforward_path(ns, pod),
            [],
            upgrade=SPDY_UPGRADE,
            headers={HEADER_PROTOCOL_VERSION: PORTFORWARD_PROTOCOL},
            what=what,
            ns=ns,
            pod=pod,
        )
        chosen = upgraded.headers.get(HEADER_PROTOCOL_VERSION.lower(), "")
        if chosen != PORTFORWARD_PROTOCOL:
            upgraded.transport.abort()
            raise upgrade.UpgradeRefused(
                f"the API server upgraded {what} but chose protocol {chosen!r}, not "
                f"{PORTFORWARD_PROTOCOL}",
                status=101,
            )
        return upgraded
