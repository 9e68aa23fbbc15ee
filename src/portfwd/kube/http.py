"""One cluster's HTTP side: the aiohttp session, TLS, credentials, timeouts, error mapping.

One :class:`aiohttp.ClientSession` per client carries everything, so REST calls, watches and
WebSocket tunnels share a keep-alive connection pool, one TLS setup and one proxy setting.
Every failure a user can meet (server down, wrong CA, expired token, missing RBAC, typo in a
name) becomes a :class:`~portfwd.errors.PortfwdError` with one line saying what to do.

Timeouts: REST calls have a connect timeout and a total timeout; watch streams have a connect
timeout and a read timeout a little longer than the server-side `timeoutSeconds` they ask for
(so a silently dead connection is noticed); upgraded port-forward connections have a connect
and handshake timeout, then no read timeout but pings (idle tunnels are normal, proxies in
front of API servers close idle connections unless something flows). Every socket has TCP
keepalive tuned to notice a dead peer within about half a minute (`keepalive_socket`).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import logging
import socket
import ssl
from collections.abc import Mapping
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self, TypedDict

import aiohttp
from yarl import URL

from portfwd import __version__
from portfwd.errors import ConfigError
from portfwd.kube.errors import ApiError, ClusterUnreachable, status_error
from portfwd.kube.proxy import env_proxy, without_password

if TYPE_CHECKING:
    from portfwd.kube.auth import Credentials
    from portfwd.kube.config import ClusterConnection

log = logging.getLogger(__name__)

USER_AGENT = f"portfwd/{__version__}"

_JSON_IN_THREAD = 1024 * 1024  # bodies larger than this are decoded off the event loop
# A REST reply larger than this is refused, not buffered: a list of 10,000 pods is about
# 100 MB; anything beyond is a misbehaving server (or a proxy) filling our memory.
MAX_REPLY_BYTES = 256 * 1024 * 1024
_RETIRED_SESSIONS = 4
KEEPALIVE_OPTIONS = (
    ("TCP_KEEPIDLE", 15),  # Linux; macOS names the idle time TCP_KEEPALIVE
    ("TCP_KEEPALIVE", 15),
    ("TCP_KEEPINTVL", 5),
    ("TCP_KEEPCNT", 3),
    ("TCP_USER_TIMEOUT", 30_000),  # ms, Linux
)


class ProxyRefused(Exception):
    """The proxy to the API server failed: `status` its answer to CONNECT (0: unreachable)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"{status} {message}" if status else message)
        self.status = status
        self.message = message


class RequestOptions(TypedDict):
    """What every request carries: fresh credentials, TLS, proxy."""

    headers: dict[str, str]
    ssl: ssl.SSLContext | bool
    server_hostname: str | None
    proxy: str | None


class HttpCore:
    """Talks HTTP to one cluster (one kubeconfig context) over one aiohttp session.

    `heartbeat`: seconds between pings on upgraded port-forward connections (0 or None: no
    pings). Pings keep proxies from cutting idle tunnels and notice a silently dead one.
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
        proxy = conn.proxy_url or env_proxy(self._base)
        if proxy and URL(proxy).scheme not in ("http", "https"):
            raise ConfigError(
                f'proxy "{without_password(proxy)}" for cluster "{conn.cluster}" is not '
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

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def base(self) -> URL:
        """The server URL (with any path prefix a proxy in front of the API server needs)."""
        return self._base

    @property
    def proxy(self) -> str | None:
        """The HTTP(S) proxy to the API server, from the kubeconfig or the environment."""
        return self._proxy

    # --- lifecycle -----------------------------------------------------------------------

    async def __aenter__(self) -> Self:
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

    def http_session(self) -> aiohttp.ClientSession:
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

    async def ssl_for(self, creds: Credentials) -> ssl.SSLContext | bool:
        if self._base.scheme != "https":
            return True
        key = (creds.client_cert_pem, creds.client_key_pem)
        async with self._ssl_lock:
            if self._ssl_ctx is None or self._ssl_key != key:
                # Building a context reads files (CA, a temp file for the client key).
                ctx = await asyncio.to_thread(self.conn.ssl_context, creds)
                self._ssl_ctx, self._ssl_key = ctx, key
            return self._ssl_ctx if self._ssl_ctx is not None else True

    def url(self, path: str) -> URL:
        """`path` below the server URL, keeping a path prefix (e.g. a Rancher proxy's)."""
        return self._base.with_path(self._base.path.rstrip("/") + path, encoded=True)

    def refresh_credentials(self) -> None:
        """After a 401: a rotated token or an expired exec credential is fetched again."""
        log.debug("401 from %s: refreshing credentials, retrying once", self.where)
        self.conn.auth.invalidate()

    async def request_options(self) -> RequestOptions:
        """Per-request options: fresh credentials (a token may rotate), TLS, proxy."""
        creds = await self.conn.auth.get()
        headers = {"Accept": "application/json"}
        if creds.token:
            headers["Authorization"] = f"Bearer {creds.token}"
        return RequestOptions(
            headers=headers,
            ssl=await self.ssl_for(creds),
            server_hostname=self.conn.tls_server_name,
            proxy=self._proxy,
        )

    # --- error mapping -------------------------------------------------------------------

    @property
    def where(self) -> str:
        return f'the Kubernetes API at {self.conn.server} (context "{self.context}")'

    def connection_error(
        self, exc: BaseException, what: str, *, connecting: bool = False
    ) -> ClusterUnreachable:
        """Map an aiohttp/OS failure to one line naming the server, the context and a fix.

        Takes aiohttp's exceptions and the plain ones under them (ssl, socket, OSError), so
        connections portfwd opens itself (`upgrade.py`) are worded the same way; with
        `connecting`, a timeout is one of the connect phase.
        """
        where = self.where
        if isinstance(exc, aiohttp.ClientConnectorCertificateError):
            exc = exc.certificate_error
        elif isinstance(exc, aiohttp.ClientConnectorDNSError):
            exc = socket.gaierror(str(exc.os_error))
        elif isinstance(exc, aiohttp.ClientProxyConnectionError):
            exc = ProxyRefused(0, exc.os_error.strerror or str(exc.os_error))
        elif isinstance(exc, aiohttp.ClientHttpProxyError):
            exc = ProxyRefused(exc.status, exc.message)
        elif isinstance(exc, aiohttp.ClientSSLError):
            exc = exc.os_error
        elif isinstance(exc, aiohttp.ClientConnectorError):
            exc, connecting = exc.os_error, True
        elif isinstance(exc, aiohttp.ConnectionTimeoutError):
            exc, connecting = TimeoutError(), True
        if isinstance(exc, ssl.SSLCertVerificationError):
            reason = exc.verify_message or str(exc)
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
        if isinstance(exc, ssl.SSLError):
            reason = exc.reason or str(exc)
            return ClusterUnreachable(
                f"TLS handshake with {where} failed: {reason} — check the server address, "
                "certificate-authority and client certificate of this context",
                cause="tls",
            )
        if isinstance(exc, ProxyRefused):
            if exc.status:
                return ClusterUnreachable(
                    f"the proxy for {where} refused the connection ({exc.status} "
                    f"{exc.message}) — check proxy-url or HTTPS_PROXY",
                    cause="proxy",
                )
            return ClusterUnreachable(
                f"cannot reach the proxy {without_password(self._proxy or '')} for "
                f"{where}: {exc.message} — check proxy-url or HTTPS_PROXY",
                cause="proxy",
            )
        if isinstance(exc, socket.gaierror):
            host = self._base.host or self.conn.server
            return ClusterUnreachable(
                f'cannot reach {where}: host "{host}" not found — check the server address '
                "in your kubeconfig, your network or VPN",
                cause="dns",
            )
        if isinstance(exc, TimeoutError):
            if connecting:
                return ClusterUnreachable(
                    f"cannot reach {where}: no answer within {self.connect_timeout:g} s — "
                    "check your network, VPN or proxy",
                    cause="timeout",
                )
            return ClusterUnreachable(
                f"{where} did not answer {what} within {self.request_timeout:g} s — the server "
                "may be overloaded; try again",
                cause="timeout",
            )
        if isinstance(exc, ConnectionRefusedError):
            return ClusterUnreachable(
                f"cannot reach {where}: connection refused — is the cluster running?",
                cause="refused",
            )
        if isinstance(exc, OSError) and exc.errno in (errno.EMFILE, errno.ENFILE):
            return ClusterUnreachable(
                f"cannot open a connection to {where}: portfwd has too many open files — "
                "close idle connections or raise the limit (ulimit -n)",
                cause="local",
            )
        if connecting and isinstance(exc, OSError):
            reason = exc.strerror or str(exc) or type(exc).__name__
            return ClusterUnreachable(
                f"cannot reach {where}: {reason.lower()} — check the server address, your "
                "network or VPN",
                cause="refused",
            )
        reason = str(exc) or type(exc).__name__
        return ClusterUnreachable(
            f"lost the connection to {where} during {what}: {reason} — try again", cause="lost"
        )

    def status_error(
        self, status: int, body: bytes, *, what: str, ns: str | None = None
    ) -> ApiError:
        """The error for a refused request, naming this context and its user."""
        return status_error(
            status, body, what=what, context=self.context, ns=ns, user=self.conn.user
        )

    # --- REST ----------------------------------------------------------------------------

    async def request_json(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        ns: str | None = None,
        what: str | None = None,
        json_body: Any = None,
    ) -> Any:
        """One REST call with auth, TLS, timeout; one retry after a 401 with fresh creds.
        `json_body`, when given, is sent as JSON."""
        session = self.http_session()
        url = self.url(path)
        what = what or f"{method} {path}"
        timeout = aiohttp.ClientTimeout(total=self.request_timeout, connect=self.connect_timeout)
        for attempt in (1, 2):
            options = await self.request_options()
            try:
                async with session.request(
                    method,
                    url,
                    params=params,
                    json=json_body,
                    **options,
                    timeout=timeout,
                ) as resp:
                    body = await self._bounded_body(resp, what)
                    status = resp.status
            except (aiohttp.ClientError, TimeoutError, ssl.SSLError) as exc:
                raise self.connection_error(exc, what) from None
            if status == 401 and attempt == 1:
                self.refresh_credentials()
                continue
            if status >= 400:
                raise self.status_error(status, body, what=what, ns=ns)
            try:
                if len(body) > _JSON_IN_THREAD:
                    return await asyncio.to_thread(json.loads, body)
                return json.loads(body)
            except (ValueError, RecursionError):  # not JSON, or nested beyond the parser
                raise ClusterUnreachable(
                    f"{self.where} sent a reply to {what} that is not readable JSON;"
                    " is a proxy in the way?",
                    cause="lost",
                ) from None
        raise AssertionError("unreachable")

    async def _bounded_body(self, resp: aiohttp.ClientResponse, what: str) -> bytes:
        """The reply's body, refused once it passes MAX_REPLY_BYTES (before, not after,
        buffering it all)."""
        declared = resp.content_length
        if declared is None or declared <= MAX_REPLY_BYTES:
            body = bytearray()
            async for chunk in resp.content.iter_any():
                body += chunk
                if len(body) > MAX_REPLY_BYTES:
                    break
            else:
                return bytes(body)
        raise ClusterUnreachable(
            f"{self.where} sent a reply to {what} over {MAX_REPLY_BYTES:,} bytes; refused",
            cause="lost",
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
    set_keepalive(sock)
    return sock


def set_keepalive(sock: socket.socket) -> None:
    """SO_KEEPALIVE and the timings above on `sock` (options a platform lacks are skipped)."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    for name, value in KEEPALIVE_OPTIONS:
        option = getattr(socket, name, None)
        if option is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, option, value)
