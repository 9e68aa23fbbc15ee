"""The Kubernetes API client: REST get/list, watch streams and the port-forward WebSocket.

One :class:`aiohttp.ClientSession` per :class:`KubeClient` carries everything, so REST calls,
watches and tunnels share a keep-alive connection pool, one TLS setup and one proxy setting.
Every failure a user can meet (server down, wrong CA, expired token, missing RBAC, typo in a
name) becomes a :class:`~portfwd.errors.PortfwdError` with one line saying what to do.

Timeouts: REST calls have a connect timeout and a total timeout; watch streams have a connect
timeout and a read timeout a little longer than the server-side `timeoutSeconds` they ask for
(so a silently dead connection is noticed); port-forward WebSockets have a connect and
handshake timeout, then no read timeout but heartbeat pings (idle tunnels are normal, proxies
in front of API servers close idle connections unless something flows). Every socket has TCP
keepalive tuned to notice a dead peer within about half a minute (`keepalive_socket`).
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import logging
import random
import re
import socket
import ssl
import urllib.request
from collections.abc import AsyncGenerator, Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Any, NoReturn, TypedDict
from urllib.parse import quote

import aiohttp
from yarl import URL

from portfwd import __version__
from portfwd.constants import LABEL_SERVICE_NAME, PORTFORWARD_V4_BINARY
from portfwd.errors import ConfigError, InputError, PortfwdError
from portfwd.kube.objects import EndpointSlice, Namespace, Pod, Service, Workload

if TYPE_CHECKING:
    from portfwd.kube.auth import Credentials
    from portfwd.kube.config import ClusterConnection

log = logging.getLogger(__name__)

USER_AGENT = f"portfwd/{__version__}"

# (API prefix, namespaced) per plural resource name.
RESOURCES: dict[str, tuple[str, bool]] = {
    "namespaces": ("/api/v1", False),
    "pods": ("/api/v1", True),
    "services": ("/api/v1", True),
    "endpointslices": ("/apis/discovery.k8s.io/v1", True),
    "deployments": ("/apis/apps/v1", True),
    "statefulsets": ("/apis/apps/v1", True),
    "replicasets": ("/apis/apps/v1", True),
}

WORKLOAD_RESOURCES: dict[str, str] = {
    "deployment": "deployments",
    "statefulset": "statefulsets",
    "replicaset": "replicasets",
}

# Synthetic watch event types (see KubeClient.watch).
SYNCED = "SYNCED"

_LIST_PAGE = 500
_WATCH_LINE_LIMIT = 16 * 1024 * 1024  # one watch event; a huge object is a few MiB at most
_WS_MAX_MSG = 16 * 1024 * 1024  # the kubelet sends <= 32 KiB per frame; anything near this is bogus
_JSON_IN_THREAD = 1024 * 1024  # bodies larger than this are decoded off the event loop
_WATCH_RETRIES = 5  # consecutive stream drops without progress before giving up (~6 s)
_TRANSIENT = ("refused", "timeout", "lost", "dns")
_RETIRED_SESSIONS = 4
_KEEPALIVE_OPTIONS = (
    ("TCP_KEEPIDLE", 15),  # Linux; macOS names the idle time TCP_KEEPALIVE
    ("TCP_KEEPALIVE", 15),
    ("TCP_KEEPINTVL", 5),
    ("TCP_KEEPCNT", 3),
    ("TCP_USER_TIMEOUT", 30_000),  # ms, Linux
)

_FORBIDDEN_RE = re.compile(
    r'User "(?P<user>[^"]*)" cannot (?P<verb>[\w-]+) resource "(?P<resource>[^"]+)"'
    r'(?: in API group "(?P<group>[^"]*)")?'
)


# --- errors ----------------------------------------------------------------------------------


class ApiError(PortfwdError):
    """The API server answered with an error status (message: one actionable line)."""

    def __init__(
        self, message: str, *, status: int, reason: str = "", api_message: str = ""
    ) -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason
        self.api_message = api_message  # the Status message, verbatim


class NotFound(ApiError):
    pass


class Forbidden(ApiError):
    pass


class Unauthorized(ApiError):
    pass


class Expired(ApiError):
    """410 Gone: a resourceVersion or continue token too old. Watches handle it themselves."""


class ClusterUnreachable(PortfwdError):
    """No usable connection to the API server; `cause` says which: refused, dns, timeout,
    tls, proxy, lost, or closed (the KubeClient itself was closed)."""

    def __init__(self, message: str, *, cause: str) -> None:
        super().__init__(message)
        self.cause = cause


class _RequestOptions(TypedDict):
    headers: dict[str, str]
    ssl: ssl.SSLContext | bool
    server_hostname: str | None
    proxy: str | None


@dataclass(frozen=True)
class WatchEvent:
    """One watch event: ADDED, MODIFIED, DELETED, BOOKMARK, or the synthetic SYNCED."""

    type: str
    object: dict[str, Any]


# --- helpers ---------------------------------------------------------------------------------


def _fold_lines(text: str) -> str:
    """A server's message inside our one-line errors (webhook denials may span lines)."""
    return " ".join(text.split())


def _status_fields(body: bytes) -> tuple[str, str, dict[str, Any]]:
    """(message, reason, details) of a JSON Status body; plain-text bodies become the message."""
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        text = body.decode("utf-8", errors="replace").strip()
        return _fold_lines(text)[:300], "", {}
    if not isinstance(data, dict):
        return "", "", {}
    details = data.get("details")
    return (
        str(data.get("message") or ""),
        str(data.get("reason") or ""),
        details if isinstance(details, dict) else {},
    )


def _env_proxy(server: URL) -> str | None:
    """The HTTP(S)_PROXY that applies to `server` (honouring NO_PROXY), as client-go does."""
    proxies = urllib.request.getproxies_environment()
    proxy = proxies.get(server.scheme)
    if not proxy or not server.host:
        return None
    if _no_proxy(server.host, proxies.get("no", "")):
        return None
    return proxy


def _without_password(proxy: str) -> str:
    """A proxy URL fit for a message: `http://user:secret@p:3128` shows as `http://user@p:3128`."""
    try:
        url = URL(proxy)
    except ValueError:
        return "<unparsable proxy URL>"
    return str(url.with_password(None)) if url.password is not None else proxy


def _no_proxy(host: str, no_proxy: str) -> bool:
    """NO_PROXY matching: `*`, exact hosts, domain suffixes and CIDRs (client-go's rules)."""
    host = host.lower().strip("[]")
    try:
        address: ipaddress.IPv4Address | ipaddress.IPv6Address | None = ipaddress.ip_address(host)
    except ValueError:
        address = None
    for raw in no_proxy.split(","):
        entry = raw.strip().lower()
        if not entry:
            continue
        if entry == "*":
            return True
        if address is not None and "/" in entry:
            with contextlib.suppress(ValueError):
                if address in ipaddress.ip_network(entry, strict=False):
                    return True
            continue
        entry = entry.split(":", 1)[0] if entry.count(":") == 1 else entry
        bare = entry.lstrip(".")
        if host == bare or host.endswith("." + bare):
            return True
    return False


def _resource_path(resource: str, ns: str | None, name: str | None = None) -> str:
    try:
        prefix, namespaced = RESOURCES[resource]
    except KeyError:
        raise ValueError(f"unknown resource {resource!r}") from None
    path = prefix
    if namespaced and ns is not None:
        path += f"/namespaces/{quote(ns, safe='')}"
    path += f"/{resource}"
    if name is not None:
        path += f"/{quote(name, safe='')}"
    return path


def _grant_hint(verb: str, resource: str, group: str) -> str:
    if resource == "pods/portforward":
        return (
            'ask your cluster admin for a Role granting both "get" and "create" on pods/portforward'
        )
    qualified = f"{resource}.{group}" if group else resource
    return f'ask your cluster admin to grant "{verb}" on {qualified}'


class KubeClient:
    """Talks to one cluster (one kubeconfig context) over one aiohttp session.

    `heartbeat` (port-forward WebSockets, aiohttp's ws_connect semantics): after `heartbeat`
    seconds with nothing received a ping is sent, and when no pong (nor any data) arrives
    within heartbeat/2 the tunnel is closed; 0 or None sends no pings. Pings keep proxies from
    cutting idle tunnels and notice a silently dead connection.
    """

    def __init__(
        self,
        conn: ClusterConnection,
        *,
        request_timeout: float = 30.0,
        connect_timeout: float = 10.0,
        watch_timeout: int = 60,
        heartbeat: float | None = 30.0,
        max_connections: int = 1000,
    ) -> None:
        self._base = URL(conn.server.rstrip("/"))
        if self._base.scheme not in ("http", "https") or not self._base.host:
            raise ConfigError(
                f'server "{conn.server}" of cluster "{conn.cluster}" is not a URL; '
                "expected https://HOST:PORT in the kubeconfig"
            )
        # kubectl honours HTTPS_PROXY / NO_PROXY when the kubeconfig names no proxy. Resolved
        # once here (aiohttp's trust_env would redo it, and read ~/.netrc, on every request).
        proxy = conn.proxy_url or _env_proxy(self._base)
        if proxy and URL(proxy).scheme not in ("http", "https"):
            raise ConfigError(
                f'proxy "{_without_password(proxy)}" for cluster "{conn.cluster}" is not '
                "supported: use an http:// or https:// proxy"
            )
        self._proxy = proxy
        self.conn = conn
        self.namespace = conn.namespace
        self.context = conn.context
        self.request_timeout = request_timeout
        self.connect_timeout = connect_timeout
        self.watch_timeout = watch_timeout
        self.heartbeat = heartbeat or None  # 0 disables pings, as None does
        self._max_connections = max_connections
        self._session: aiohttp.ClientSession | None = None
        self._retired: list[aiohttp.ClientSession] = []  # see renew_connections()
        self._closing: set[asyncio.Task[None]] = set()
        self._ssl_key: tuple[bytes | None, bytes | None] | None = None
        self._ssl_ctx: ssl.SSLContext | None = None
        self._ssl_lock = asyncio.Lock()
        self._closed = False

    # --- lifecycle -----------------------------------------------------------------------

    async def __aenter__(self) -> KubeClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        self._closed = True
        sessions, self._retired = self._retired, []
        if self._session is not None:
            sessions.append(self._session)
            self._session = None
        for session in sessions:
            await session.close()

    def renew_connections(self) -> None:
        """New requests use new TCP connections from now on.

        After a sleep (or a NAT/VPN change) pooled keep-alive connections may be dead
        without the kernel knowing, and a request sent on one hangs until its read timeout.
        The old session is not closed here: port-forwards still open on it keep running
        (they fail or finish by themselves); it is closed with the client, and at most
        :data:`_RETIRED_SESSIONS` are kept (older ones are closed).
        """
        if self._session is None:
            return
        self._retired.append(self._session)
        self._session = None
        while len(self._retired) > _RETIRED_SESSIONS:
            old = self._retired.pop(0)
            task = asyncio.get_running_loop().create_task(old.close())
            self._closing.add(task)
            task.add_done_callback(self._closing.discard)

    def _get_session(self) -> aiohttp.ClientSession:
        if self._closed:
            raise ClusterUnreachable(
                f'the client for context "{self.context}" was closed (portfwd is shutting down)',
                cause="closed",
            )
        if self._session is None:
            connector = aiohttp.TCPConnector(
                limit=self._max_connections,
                limit_per_host=0,
                keepalive_timeout=30.0,
                socket_factory=keepalive_socket,
            )
            # The default timeout applies to WebSocket handshakes (ws_connect has no per-call
            # one): bounded connect and header read; REST and watch calls pass their own.
            timeout = aiohttp.ClientTimeout(
                total=None,
                connect=self.connect_timeout,
                sock_connect=self.connect_timeout,
                sock_read=self.request_timeout,
            )
            self._session = aiohttp.ClientSession(
                connector=connector,
                timeout=timeout,
                headers={"User-Agent": USER_AGENT},
                cookie_jar=aiohttp.DummyCookieJar(),
            )
        return self._session

    async def _ssl_for(self, creds: Credentials) -> ssl.SSLContext | bool:
        if self._base.scheme != "https":
            return True
        key = (creds.client_cert_pem, creds.client_key_pem)
        async with self._ssl_lock:
            if self._ssl_ctx is None or self._ssl_key != key:
                # Building a context reads files (CA, a temp file for the client key).
                ctx = await asyncio.to_thread(self.conn.ssl_context, creds)
                self._ssl_ctx, self._ssl_key = ctx, key
            return self._ssl_ctx if self._ssl_ctx is not None else True

    def _url(self, path: str) -> URL:
        """`path` below the server URL, keeping a path prefix (e.g. a Rancher proxy's)."""
        return self._base.with_path(self._base.path.rstrip("/") + path, encoded=True)

    def _refresh_credentials(self) -> None:
        """After a 401: a rotated token or an expired exec credential is fetched again."""
        log.debug("401 from %s: refreshing credentials, retrying once", self._where)
        self.conn.auth.invalidate()

    async def _prepare(self) -> _RequestOptions:
        """Per-request options: fresh credentials (a token may rotate), TLS, proxy."""
        creds = await self.conn.auth.get()
        headers = {"Accept": "application/json"}
        if creds.token:
            headers["Authorization"] = f"Bearer {creds.token}"
        return _RequestOptions(
            headers=headers,
            ssl=await self._ssl_for(creds),
            server_hostname=self.conn.tls_server_name,
            proxy=self._proxy,
        )

    # --- error mapping -------------------------------------------------------------------

    @property
    def _where(self) -> str:
        return f'the Kubernetes API at {self.conn.server} (context "{self.context}")'

    def _connection_error(self, exc: BaseException, what: str) -> ClusterUnreachable:
        """Map an aiohttp/OS failure to one line naming the server, the context and a fix."""
        where = self._where
        if isinstance(exc, aiohttp.ClientConnectorCertificateError):
            cert_err = exc.certificate_error
            reason = getattr(cert_err, "verify_message", "") or str(cert_err)
            hint = (
                f'check certificate-authority for cluster "{self.conn.cluster}" in your '
                "kubeconfig, or that you use the right context"
            )
            if "hostname" in reason.lower() or "ip address mismatch" in reason.lower():
                hint += " (or set tls-server-name to a name in the server's certificate)"
            return ClusterUnreachable(
                f"cannot verify the TLS certificate of {where}: certificate verify failed"
                f" ({reason}) — {hint}",
                cause="tls",
            )
        if isinstance(exc, aiohttp.ClientSSLError | ssl.SSLError):
            inner = exc.os_error if isinstance(exc, aiohttp.ClientConnectorError) else exc
            reason = getattr(inner, "reason", None) or str(inner)
            return ClusterUnreachable(
                f"TLS handshake with {where} failed: {reason} — check the server address, "
                "certificate-authority and client certificate of this context",
                cause="tls",
            )
        if isinstance(exc, aiohttp.ClientProxyConnectionError):
            return ClusterUnreachable(
                f"cannot reach the proxy {_without_password(self._proxy or '')} for "
                f"{where}: {exc.os_error.strerror or exc.os_error} — check proxy-url or "
                "HTTPS_PROXY",
                cause="proxy",
            )
        if isinstance(exc, aiohttp.ClientHttpProxyError):
            return ClusterUnreachable(
                f"the proxy for {where} refused the connection ({exc.status} {exc.message}) — "
                "check proxy-url or HTTPS_PROXY",
                cause="proxy",
            )
        if isinstance(exc, aiohttp.ClientConnectorDNSError):
            host = self._base.host or self.conn.server
            return ClusterUnreachable(
                f'cannot reach {where}: host "{host}" not found — check the server address '
                "in your kubeconfig, your network or VPN",
                cause="dns",
            )
        if isinstance(exc, aiohttp.ClientConnectorError):
            os_err = exc.os_error
            if isinstance(os_err, ConnectionRefusedError):
                return ClusterUnreachable(
                    f"cannot reach {where}: connection refused — is the cluster running?",
                    cause="refused",
                )
            reason = os_err.strerror or str(os_err) or type(os_err).__name__
            return ClusterUnreachable(
                f"cannot reach {where}: {reason.lower()} — check the server address, your "
                "network or VPN",
                cause="refused",
            )
        if isinstance(exc, aiohttp.ConnectionTimeoutError):
            return ClusterUnreachable(
                f"cannot reach {where}: no answer within {self.connect_timeout:g} s — check "
                "your network, VPN or proxy",
                cause="timeout",
            )
        if isinstance(exc, TimeoutError):
            return ClusterUnreachable(
                f"{where} did not answer {what} within {self.request_timeout:g} s — the server "
                "may be overloaded; try again",
                cause="timeout",
            )
        reason = str(exc) or type(exc).__name__
        return ClusterUnreachable(
            f"lost the connection to {where} during {what}: {reason} — try again", cause="lost"
        )

    def _status_error(
        self,
        status: int,
        body: bytes,
        *,
        what: str,
        ns: str | None = None,
        user: str = "",
    ) -> ApiError:
        message, reason, details = _status_fields(body)
        shown = _fold_lines(message)
        ctx = f'context "{self.context}"'
        if status == 401:
            return Unauthorized(
                f'the API server rejected the credentials of user "{user}" (401 Unauthorized); '
                "log in again or refresh the token",
                status=status,
                reason=reason or "Unauthorized",
                api_message=message,
            )
        if status == 403:
            match = _FORBIDDEN_RE.search(message)
            if match:
                verb, resource, group = match["verb"], match["resource"], match["group"] or ""
                scope = f' in namespace "{ns}"' if ns else ""
                text = (
                    f'user "{match["user"]}" may not {verb} {resource}{scope} (403 Forbidden, '
                    f"{ctx}); {_grant_hint(verb, resource, group)}"
                )
            else:
                text = f"the API server refused {what} (403 Forbidden, {ctx})" + (
                    f": {shown}" if shown else ""
                )
            return Forbidden(text, status=status, reason=reason or "Forbidden", api_message=message)
        if status == 404:
            if message and reason == "NotFound":
                text = shown + (f' in namespace "{ns}"' if ns and details.get("name") else "")
            else:
                # Not a Status: the API itself is missing (e.g. an old or partial server).
                text = f"the API server does not serve {what} (404 Not Found, {ctx})"
            return NotFound(text, status=status, reason=reason or "NotFound", api_message=message)
        if status == 410:
            return Expired(
                f"{what}: {shown or '410 Gone'}",
                status=status,
                reason=reason or "Expired",
                api_message=message,
            )
        detail = f": {shown}" if shown else ""
        answer = f"{status} {reason}" if reason else str(status)
        return ApiError(
            f"the API server answered {answer} to {what}{detail} ({ctx})",
            status=status,
            reason=reason,
            api_message=message,
        )

    # --- REST ----------------------------------------------------------------------------

    async def _request_json(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        ns: str | None = None,
        what: str | None = None,
    ) -> Any:
        """One REST call with auth, TLS, timeout; one retry after a 401 with fresh creds."""
        session = self._get_session()
        url = self._url(path)
        what = what or f"{method} {path}"
        timeout = aiohttp.ClientTimeout(total=self.request_timeout, connect=self.connect_timeout)
        for attempt in (1, 2):
            options = await self._prepare()
            try:
                async with session.request(
                    method,
                    url,
                    params=params,
                    **options,
                    timeout=timeout,
                ) as resp:
                    body = await resp.read()
                    status = resp.status
            except (aiohttp.ClientError, TimeoutError, ssl.SSLError) as exc:
                raise self._connection_error(exc, what) from None
            if status == 401 and attempt == 1:
                self._refresh_credentials()
                continue
            if status >= 400:
                raise self._status_error(status, body, what=what, ns=ns, user=self.conn.user)
            if len(body) > _JSON_IN_THREAD:
                return await asyncio.to_thread(json.loads, body)
            return json.loads(body)
        raise AssertionError("unreachable")

    async def _get(self, resource: str, ns: str | None, name: str) -> dict[str, Any]:
        data = await self._request_json(
            "GET", _resource_path(resource, ns, name), ns=ns, what=f'get {resource} "{name}"'
        )
        if not isinstance(data, dict):
            raise ApiError(f"unexpected answer to get {resource}", status=200)
        return data

    async def _list_raw(
        self,
        resource: str,
        ns: str | None,
        *,
        label_selector: str | None = None,
        field_selector: str | None = None,
    ) -> tuple[list[dict[str, Any]], str]:
        """All items (paged by 500) and the list's resourceVersion."""
        path = _resource_path(resource, ns)
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
                data = await self._request_json("GET", path, params=params, ns=ns, what=what)
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
        data = await self._request_json("GET", "/version", what="get the server version")
        return data if isinstance(data, dict) else {}

    async def list_namespaces(self) -> list[Namespace]:
        items, _ = await self._list_raw("namespaces", None)
        return [Namespace.from_dict(i) for i in items]

    async def get_namespace(self, name: str) -> Namespace:
        data = await self._request_json(
            "GET", _resource_path("namespaces", None, name), what=f'get namespace "{name}"'
        )
        return Namespace.from_dict(data)

    async def get_pod(self, ns: str, name: str) -> Pod:
        return Pod.from_dict(await self._get("pods", ns, name))

    async def list_pods(self, ns: str, label_selector: str | None = None) -> list[Pod]:
        items, _ = await self._list_raw("pods", ns, label_selector=label_selector)
        return [Pod.from_dict(i) for i in items]

    async def get_service(self, ns: str, name: str) -> Service:
        return Service.from_dict(await self._get("services", ns, name))

    async def list_services(self, ns: str) -> list[Service]:
        items, _ = await self._list_raw("services", ns)
        return [Service.from_dict(i) for i in items]

    async def list_endpointslices(self, ns: str, service: str | None = None) -> list[EndpointSlice]:
        selector = f"{LABEL_SERVICE_NAME}={service}" if service is not None else None
        items, _ = await self._list_raw("endpointslices", ns, label_selector=selector)
        return [EndpointSlice.from_dict(i) for i in items]

    @staticmethod
    def _workload_resource(kind: str) -> str:
        key = kind.lower()
        if key in WORKLOAD_RESOURCES:
            return WORKLOAD_RESOURCES[key]
        if key in WORKLOAD_RESOURCES.values():
            return key
        raise ValueError(f"unknown workload kind {kind!r}")

    async def get_workload(self, kind: str, ns: str, name: str) -> Workload:
        resource = self._workload_resource(kind)
        return Workload.from_dict(kind.lower(), await self._get(resource, ns, name))

    async def list_workloads(self, kind: str, ns: str) -> list[Workload]:
        items, _ = await self._list_raw(self._workload_resource(kind), ns)
        return [Workload.from_dict(kind.lower(), i) for i in items]

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
        ClusterUnreachable is raised (default 5, about 6 s). With 1 the first failed resume
        raises: a consumer running its own backoff learns within a fraction of a second that
        the API server is gone (a stream that drops after delivering events is resumed once
        at once, after 0.1 to 0.3 s).

        Use it as ``async with contextlib.aclosing(client.watch(...)) as events:`` so the
        stream is closed as soon as the consumer stops.
        """
        path = _resource_path(resource, ns)  # validates `resource` before the first await
        if retries is not None and retries < 1:
            raise ValueError(f"watch retries must be at least 1, got {retries}")
        limit = _WATCH_RETRIES if retries is None else retries
        return self._watch(resource, path, ns, label_selector, field_selector, limit)

    async def _watch(
        self,
        resource: str,
        path: str,
        ns: str | None,
        label_selector: str | None,
        field_selector: str | None,
        retries: int,
    ) -> AsyncGenerator[WatchEvent, None]:
        known: dict[tuple[str, str], dict[str, Any]] = {}
        rv: str | None = None
        failures = 0
        last_error: ClusterUnreachable | None = None
        while not self._closed:
            if rv is None:
                if known:
                    log.debug("watch %s: resourceVersion expired, listing again", resource)
                items, rv = await self._list_raw(
                    resource, ns, label_selector=label_selector, field_selector=field_selector
                )
                for event in _diff_relist(known, items):
                    yield event
                yield WatchEvent(SYNCED, {"resourceVersion": rv})
            params = {
                "watch": "1",
                "resourceVersion": rv,
                "allowWatchBookmarks": "true",
                "timeoutSeconds": str(self.watch_timeout),
            }
            if label_selector:
                params["labelSelector"] = label_selector
            if field_selector:
                params["fieldSelector"] = field_selector
            progressed = dropped = False
            stream = self._watch_stream(path, params, ns, resource)
            try:
                async for raw in stream:
                    etype = str(raw.get("type", ""))
                    obj = raw.get("object")
                    if not isinstance(obj, dict):
                        continue
                    if etype == "ERROR":
                        code = obj.get("code")
                        if code == 410:
                            rv = None  # too old: relist
                            break
                        message = str(obj.get("message") or obj.get("reason") or "unknown error")
                        raise ApiError(
                            f"watch {resource} failed: {_fold_lines(message)}",
                            status=code if isinstance(code, int) else 500,
                            reason=str(obj.get("reason") or ""),
                            api_message=message,
                        )
                    meta = obj.get("metadata")
                    new_rv = meta.get("resourceVersion") if isinstance(meta, dict) else None
                    if new_rv:
                        rv = str(new_rv)
                    progressed = True
                    if etype != "BOOKMARK":
                        key = _key(obj)
                        if etype == "DELETED":
                            known.pop(key, None)
                        else:
                            known[key] = obj
                    yield WatchEvent(etype, obj)
            except Expired:
                rv = None
                continue
            except _StreamDropped:
                dropped = True
            except ClusterUnreachable as exc:
                # A restarting API server or a network blip: resume like a dropped stream.
                # TLS and proxy failures will not heal by themselves: raise them at once.
                if exc.cause not in _TRANSIENT:
                    raise
                dropped, last_error = True, exc
            finally:
                # Close the HTTP response now, not when the generator is garbage collected.
                await stream.aclose()
            if not dropped:
                failures = 0
                continue
            if self._closed:
                return
            failures = 0 if progressed else failures + 1
            log.debug("watch %s: stream dropped (attempt %d), resuming", resource, failures)
            if failures >= retries:
                raise last_error or ClusterUnreachable(
                    f"the watch on {resource} at {self._where} keeps dropping — check the "
                    "network or proxy",
                    cause="lost",
                )
            await asyncio.sleep(min(0.2 * 2**failures, 5.0) * (0.5 + random.random()))

    async def _watch_stream(
        self, path: str, params: dict[str, str], ns: str | None, resource: str
    ) -> AsyncGenerator[dict[str, Any], None]:
        """Yield decoded watch lines; raise _StreamDropped when the connection breaks."""
        session = self._get_session()
        url = self._url(path)
        scope = f' in namespace "{ns}"' if ns else ""
        what = f"watch {resource}{scope}"
        timeout = aiohttp.ClientTimeout(
            total=None,
            connect=self.connect_timeout,
            sock_connect=self.connect_timeout,
            sock_read=self.watch_timeout + 30,
        )
        for attempt in (1, 2):
            options = await self._prepare()
            try:
                resp = await session.get(
                    url,
                    params=params,
                    **options,
                    timeout=timeout,
                )
            except (aiohttp.ClientError, TimeoutError, ssl.SSLError) as exc:
                raise self._connection_error(exc, what) from None
            async with resp:
                if resp.status == 401 and attempt == 1:
                    self._refresh_credentials()
                    continue
                if resp.status >= 400:
                    try:
                        body = await resp.read()
                    except (aiohttp.ClientError, TimeoutError):
                        body = b""
                    raise self._status_error(
                        resp.status, body, what=what, ns=ns, user=self.conn.user
                    )
                buffer = bytearray()
                try:
                    async for chunk in resp.content.iter_any():
                        # Search only the new bytes: a big object arrives in many chunks.
                        newline = chunk.find(b"\n")
                        if newline >= 0:
                            newline += len(buffer)
                        buffer += chunk
                        while newline >= 0:
                            line = bytes(buffer[:newline])
                            del buffer[: newline + 1]
                            newline = buffer.find(b"\n")
                            if line.strip():
                                event = _decode_event(line)
                                if event is not None:
                                    yield event
                        if len(buffer) > _WATCH_LINE_LIMIT:
                            raise _StreamDropped("watch event too large")
                except (aiohttp.ClientError, TimeoutError) as exc:
                    raise _StreamDropped(str(exc)) from None
                if buffer.strip():
                    event = _decode_event(bytes(buffer))
                    if event is not None:
                        yield event
                return

    # --- port-forward --------------------------------------------------------------------

    async def open_portforward(
        self, ns: str, pod: str, ports: Sequence[int]
    ) -> aiohttp.ClientWebSocketResponse:
        """Upgrade GET .../pods/{pod}/portforward to a `v4.channel.k8s.io` WebSocket.

        The caller owns the returned WebSocket and must close it. Failures of the upgrade
        (403, 404, pod not scheduled ...) raise ApiError subclasses with the server's reason.
        """
        if not ports or any(not 1 <= p <= 65535 for p in ports):
            raise InputError(f"port-forward needs ports in 1..65535, got {list(ports)}")
        session = self._get_session()
        path = _resource_path("pods", ns, pod) + "/portforward"
        url = self._url(path)
        params = [("ports", str(p)) for p in ports]
        what = f'port-forward to pod "{pod}"'
        status = 0
        for attempt in (1, 2):
            options = await self._prepare()
            try:
                return await session.ws_connect(
                    url.with_query(params),
                    protocols=(PORTFORWARD_V4_BINARY,),
                    **options,
                    heartbeat=self.heartbeat,
                    max_msg_size=_WS_MAX_MSG,
                    autoclose=True,
                    autoping=True,
                    timeout=aiohttp.ClientWSTimeout(ws_receive=None, ws_close=5.0),
                )
            except aiohttp.WSServerHandshakeError as exc:
                status = exc.status
                if status == 401 and attempt == 1:
                    self._refresh_credentials()
                    continue
                break
            except (aiohttp.ClientError, TimeoutError, ssl.SSLError) as exc:
                raise self._connection_error(exc, what) from None
        await self._explain_upgrade_failure(path, params, status, ns, pod, what)

    async def _explain_upgrade_failure(
        self,
        path: str,
        params: list[tuple[str, str]],
        status: int,
        ns: str,
        pod: str,
        what: str,
    ) -> NoReturn:
        """aiohttp drops the body of a refused upgrade: replay the request without the
        upgrade (authorization, pod lookup and scheduling are checked before any upgrade, so
        the API server answers the same Status) to give the user the server's own words.
        A 5xx is replayed too: "error dialing backend: ..." names the node that is down."""
        if status in (400, 401, 403, 404, 500, 502, 503):
            session = self._get_session()
            url = self._url(path)
            options = await self._prepare()
            body = b""
            replayed = 0
            with contextlib.suppress(aiohttp.ClientError, TimeoutError, ssl.SSLError):
                async with session.get(
                    url.with_query(params),
                    **options,
                    timeout=aiohttp.ClientTimeout(
                        total=self.request_timeout, connect=self.connect_timeout
                    ),
                ) as resp:
                    replayed, body = resp.status, await resp.read()
            if replayed == status:
                error = self._status_error(status, body, what=what, ns=ns, user=self.conn.user)
                if status in (400, 500, 502, 503) and error.api_message:
                    raise ApiError(
                        f"cannot port-forward to pod {pod}: {_fold_lines(error.api_message)}",
                        status=status,
                        reason=error.reason,
                        api_message=error.api_message,
                    )
                raise error
        if status == 403:
            raise Forbidden(
                f'user "{self.conn.user}" may not port-forward to pod {pod} in namespace '
                f'"{ns}" (403 Forbidden, context "{self.context}"); '
                + _grant_hint("create", "pods/portforward", ""),
                status=403,
                reason="Forbidden",
            )
        if status == 404:
            raise NotFound(
                f'pods "{pod}" not found in namespace "{ns}"', status=404, reason="NotFound"
            )
        if status == 401:
            raise self._status_error(401, b"", what=what, ns=ns, user=self.conn.user)
        raise ApiError(
            f"the API server refused the port-forward upgrade to pod {pod} ({status}, "
            f'context "{self.context}")',
            status=status,
        )


def keepalive_socket(addr_info: tuple[Any, ...]) -> socket.socket:
    """A client socket whose kernel notices a dead peer within about half a minute.

    A watch stream is idle most of the time and HTTP/1.1 has no ping (client-go relies on
    HTTP/2 pings instead), so without this a NAT or VPN that silently dropped the connection
    would go unnoticed until the read timeout, and a forward would show a stale view of its
    pods. Keepalive probes after TCP_KEEPIDLE idle seconds, TCP_KEEPCNT unanswered probes
    TCP_KEEPINTVL apart end the connection; TCP_USER_TIMEOUT does the same for data that is
    never acknowledged. Options a platform lacks are skipped.
    """
    family, type_, proto = addr_info[0], addr_info[1], addr_info[2]
    sock = socket.socket(family, type_, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    for name, value in _KEEPALIVE_OPTIONS:
        option = getattr(socket, name, None)
        if option is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, option, value)
    return sock


class _StreamDropped(Exception):
    """A watch stream broke after it was established (internal: the watch resumes)."""


def _decode_event(line: bytes) -> dict[str, Any] | None:
    try:
        data = json.loads(line)
    except (ValueError, UnicodeDecodeError):
        raise _StreamDropped("malformed watch event") from None
    return data if isinstance(data, dict) else None


def _key(obj: dict[str, Any]) -> tuple[str, str]:
    meta = obj.get("metadata")
    if not isinstance(meta, dict):
        return "", ""
    return str(meta.get("namespace") or ""), str(meta.get("name") or "")


def _diff_relist(
    known: dict[tuple[str, str], dict[str, Any]], items: list[dict[str, Any]]
) -> list[WatchEvent]:
    """Events turning the consumer's view (`known`) into the new list; updates `known`."""
    events: list[WatchEvent] = []
    fresh: dict[tuple[str, str], dict[str, Any]] = {}
    for item in items:
        fresh[_key(item)] = item
    for key, old in list(known.items()):
        new = fresh.get(key)
        if new is None or _uid(new) != _uid(old):
            events.append(WatchEvent("DELETED", old))
            del known[key]
    for key, item in fresh.items():
        previous = known.get(key)
        if previous is None:
            events.append(WatchEvent("ADDED", item))
        elif _rv(previous) != _rv(item):
            events.append(WatchEvent("MODIFIED", item))
        known[key] = item
    return events


def _uid(obj: dict[str, Any]) -> str:
    meta = obj.get("metadata")
    return str(meta.get("uid") or "") if isinstance(meta, dict) else ""


def _rv(obj: dict[str, Any]) -> str:
    meta = obj.get("metadata")
    return str(meta.get("resourceVersion") or "") if isinstance(meta, dict) else ""
