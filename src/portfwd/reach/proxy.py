"""`portfwd proxy`: SOCKS5 and HTTP proxy for cluster names, on one loopback port.

The first byte of a connection tells the protocol (5: SOCKS5, otherwise HTTP). What a client
may ask for:

- SOCKS5 CONNECT to a domain name (`curl --proxy socks5h://127.0.0.1:1080`);
- HTTP `CONNECT host:port` (HTTPS and any TCP through an HTTP proxy);
- plain HTTP through the proxy (`GET http://web.demo/ HTTP/1.1`);
- plain HTTP *to* the proxy with a `*.localhost` Host (`http://web.demo.localhost:1080/`,
  which browsers and curl resolve to loopback per RFC 6761): routed by the Host header to the
  Service's HTTP port (80, a port named http, else its first);
- `GET /proxy.pac` (with `--pac`): a PAC file sending only cluster names to the proxy.

Names (`portfwd.reach.names`) are the only destinations: anything else is refused with the
protocol's own error (SOCKS5 "not allowed by ruleset", HTTP 403), and a Service that does not
exist or has no Ready pod with "host unreachable" / 502, each logged once as one line. Each
accepted connection is one task the server owns; a malformed request costs that connection
one log line, never the server.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Mapping

from portfwd.engine.dial import Dialer, DialError
from portfwd.errors import PortfwdError
from portfwd.kube.client import KubeClient
from portfwd.reach import httphead, socks5
from portfwd.reach.names import ClusterName, parse_name
from portfwd.reach.pac import pac_file
from portfwd.reach.wire import BadRequest, ClientGone, HeadReader
from portfwd.safetext import escape_controls
from portfwd.tunnel.addresses import BindAddress
from portfwd.tunnel.listener import Listeners, LocalConnection, bind
from portfwd.tunnel.protocol import TunnelStream
from portfwd.tunnel.pump import pump

log = logging.getLogger(__name__)

HEAD_TIMEOUT = 30.0  # a client has this long to send its request head
NAMESPACES_TTL = 60.0  # the PAC file's namespace list is refreshed after this long


class Refused(Exception):
    """A request the proxy will not carry: `unknown` names nothing in a cluster we serve."""

    def __init__(self, message: str, *, not_cluster: bool = False, unknown: bool = False) -> None:
        super().__init__(message)
        self.not_cluster = not_cluster
        self.unknown = unknown


class _Meter:
    def __init__(self) -> None:
        self.bytes_in = 0
        self.bytes_out = 0

    def add_in(self, n: int) -> None:
        self.bytes_in += n

    def add_out(self, n: int) -> None:
        self.bytes_out += n


class ProxyServer:
    def __init__(
        self,
        dialer: Dialer,
        clients: Mapping[str, KubeClient],
        default: str,
        *,
        credentials: tuple[str, str] | None = None,
        pac: bool = False,
        on_log: Callable[[str], None] = lambda line: None,
    ) -> None:
        """`clients`: context label -> client; `default`: the label plain names mean."""
        self.dialer = dialer
        self.clients = dict(clients)
        self.default = default
        self.credentials = credentials
        self.pac = pac
        self.on_log = on_log
        self.listeners: Listeners | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._namespaces: dict[str, tuple[float, set[str] | None]] = {}
        self.served = 0  # connections relayed (tests, bench)
        self.accepted = 0  # connections accepted, whatever they asked
        self.pac_served = 0

    @property
    def port(self) -> int:
        return self.listeners.port if self.listeners else 0

    async def start(self, address: BindAddress, port: int) -> None:
        self.listeners = await bind([address], port, self._accept)

    async def close(self) -> None:
        listeners, self.listeners = self.listeners, None
        if listeners is not None:
            await listeners.close()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks)

    def _accept(self, local: LocalConnection) -> None:
        self.accepted += 1
        task = asyncio.create_task(self._serve(local), name=f"proxy-{local.peer}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _log(self, text: str) -> None:
        self.on_log(escape_controls(text))

    # -- one connection ---------------------------------------------------------------------

    async def _serve(self, local: LocalConnection) -> None:
        reader = HeadReader(local)
        try:
            async with asyncio.timeout(HEAD_TIMEOUT):
                first = await reader.peek(1)
            if first[0] == socks5.VERSION:
                await self._socks(reader)
            else:
                await self._http(reader)
        except ClientGone:
            local.close()
        except (BadRequest, TimeoutError) as exc:
            why = str(exc) or "no request within 30 s"
            self._log(f"proxy: bad request from {local.peer}: {why}")
            local.close()
        except (OSError, PortfwdError) as exc:
            self._log(f"proxy: connection from {local.peer} failed: {exc}")
            local.close()
        except asyncio.CancelledError:
            local.abort()
            raise
        except Exception:  # a bug: one connection, not the server
            log.exception("proxy connection failed")
            local.abort()

    async def _socks(self, reader: HeadReader) -> None:
        local = reader.local
        async with asyncio.timeout(HEAD_TIMEOUT):
            request, answer = await socks5.handshake(reader, self.credentials)
        if request is None:
            await local.write(answer)
            local.close()
            return
        try:
            if request.is_ip:
                raise Refused(
                    f"{request.host} is an IP address; use socks5h:// so names reach the proxy",
                    not_cluster=True,
                )
            stream = await self._dial(request.host, request.port)
        except Refused as exc:
            self._log(f"proxy: refused SOCKS5 {request.host}:{request.port}: {exc}")
            code = (
                socks5.NOT_ALLOWED
                if exc.not_cluster
                else socks5.HOST_UNREACHABLE
                if exc.unknown
                else socks5.GENERAL_FAILURE
            )
            await local.write(socks5.reply(code))
            local.close()
            return
        await local.write(socks5.reply(socks5.SUCCEEDED))
        await self._relay(local, stream, reader.rest())

    async def _http(self, reader: HeadReader) -> None:
        local = reader.local
        async with asyncio.timeout(HEAD_TIMEOUT):
            head = await httphead.read_head(reader)
        if not httphead.authorized(head, self.credentials):
            await self._answer(
                local,
                httphead.response(
                    407,
                    "proxy authentication required\n",
                    (("Proxy-Authenticate", 'Basic realm="portfwd"'),),
                ),
            )
            return
        first: bytes
        if head.method == "CONNECT":
            host, port = httphead.split_authority(head.target, None)
            if port is None:
                raise BadRequest(f"CONNECT {head.target[:80]!r} has no port")
            first = b""
            hello = b"HTTP/1.1 200 Connection established\r\n\r\n"
        elif head.target.startswith("/"):
            await self._origin(reader, head)
            return
        else:
            host, port, path = httphead.absolute_target(head.target)
            first, hello = httphead.origin_head(head, path), b""
        try:
            stream = await self._dial(host, port)
        except Refused as exc:
            self._log(f"proxy: refused HTTP {head.method} {host}:{port}: {exc}")
            status = 403 if exc.not_cluster else 502
            await self._answer(local, httphead.response(status, f"{exc}\n"))
            return
        if hello:
            await local.write(hello)
        await self._relay(local, stream, first + reader.rest())

    async def _origin(self, reader: HeadReader, head: httphead.Head) -> None:
        """A request to the proxy itself: the PAC file, or `*.localhost` routing."""
        local = reader.local
        host_header = head.header(b"host") or ""
        host, _ = httphead.split_authority(host_header, None)
        host = host.lower().rstrip(".")
        if head.target.split("?", 1)[0] == "/proxy.pac" and not host.endswith(".localhost"):
            if not self.pac:
                await self._answer(local, httphead.response(404, "no PAC file (--pac)\n"))
                return
            text = pac_file(
                f"{self._listen_host(host_header)}",
                await self._known_namespaces(),
                list(self.clients),
            )
            self.pac_served += 1
            await self._answer(
                local,
                httphead.response(
                    200, text, (("Content-Type", "application/x-ns-proxy-autoconfig"),)
                ),
            )
            return
        if not host.endswith(".localhost"):
            await self._answer(
                local,
                httphead.response(
                    404,
                    "this is portfwd's proxy: use it as a proxy, or ask for "
                    "http://SERVICE.NAMESPACE.localhost:PORT/\n",
                ),
            )
            return
        name = host.removesuffix(".localhost")
        try:
            stream = await self._dial(name, None)
        except Refused as exc:
            self._log(f"proxy: refused {host}: {exc}")
            await self._answer(
                local, httphead.response(403 if exc.not_cluster else 502, f"{exc}\n")
            )
            return
        await self._relay(local, stream, httphead.origin_head(head, head.target) + reader.rest())

    def _listen_host(self, host_header: str) -> str:
        """Where the PAC file sends browsers: the address the proxy listens on."""
        if self.listeners and self.listeners.bound:
            host, port = self.listeners.bound[0]
            return f"{host}:{port}"
        return host_header

    async def _known_namespaces(self) -> list[str]:
        """Namespaces of every cluster served (for PAC's short names)."""
        names: set[str] = set()
        for label in self.clients:
            names |= await self._namespaces_of(label) or set()
        return sorted(names)

    async def _namespaces_of(self, label: str) -> set[str] | None:
        """The namespaces of one cluster, cached for a minute; None when they cannot be
        listed (no permission): then every namespace name is tried."""
        cached = self._namespaces.get(label)
        if cached is not None and time.monotonic() - cached[0] < NAMESPACES_TTL:
            return cached[1]
        found: set[str] | None
        try:
            found = {n.name for n in await self.clients[label].list_namespaces()}
        except (PortfwdError, OSError):
            found = None
        self._namespaces[label] = (time.monotonic(), found)
        return found

    async def _answer(self, local: LocalConnection, data: bytes) -> None:
        with contextlib.suppress(OSError):
            await local.write(data)
        local.close()

    # -- dialling and relaying -------------------------------------------------------------------

    async def _name(self, host: str) -> tuple[ClusterName, KubeClient]:
        name = parse_name(host)
        if name is None:
            raise Refused(
                f"{host} is not a cluster name; portfwd proxies only those", not_cluster=True
            )
        label = name.context or self.default
        client = self.clients.get(label)
        if client is None:
            raise Refused(
                f"no cluster is served as {label!r} (the proxy's --context)", unknown=True
            )
        namespaces = await self._namespaces_of(label)
        if namespaces is not None and name.namespace not in namespaces:
            raise Refused(
                f"{host} is not a cluster name (no namespace {name.namespace!r})", not_cluster=True
            )
        return name, client

    async def _dial(self, host: str, port: int | None) -> tuple[TunnelStream, tuple[str, str]]:
        """A stream to the name, and (namespace, pod) it went to."""
        name, client = await self._name(host)
        try:
            if port is None:
                svc = await self.dialer.service(client, name.namespace, name.service)
                port = self.dialer.default_port(svc)
            stream, route = await self.dialer.dial(
                client, name.namespace, name.service, port, name.pod
            )
        except DialError as exc:
            raise Refused(str(exc), unknown=exc.unknown) from None
        except PortfwdError as exc:
            raise Refused(str(exc)) from None
        return stream, (name.namespace, route.pod.name)

    async def _relay(
        self, local: LocalConnection, dialled: tuple[TunnelStream, tuple[str, str]], first: bytes
    ) -> None:
        stream, key = dialled
        counter = self.dialer.open_streams
        counter[key] += 1
        self.served += 1
        try:
            if first:
                try:
                    await stream.send(first)
                except BaseException:
                    stream.abort()
                    raise
            await pump(local, stream, _Meter())
        finally:
            counter[key] -= 1
            if counter[key] <= 0:
                del counter[key]
