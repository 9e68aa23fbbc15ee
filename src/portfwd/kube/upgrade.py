"""Port-forward upgrades: the two ways a pod port-forward leaves plain HTTP.

- :func:`open_websocket`: GET with a WebSocket upgrade, for `v4.channel.k8s.io` and for SPDY
  tunnelled in a WebSocket (`SPDY/3.1+portforward.k8s.io`, KEP-4006). aiohttp does the
  handshake; the caller owns the returned WebSocket.
- :func:`open_raw_upgrade`: POST with `Upgrade: SPDY/3.1`, the protocol kubectl has always
  spoken. aiohttp has no API for a non-WebSocket upgrade, so this is a small HTTP/1.1 client of
  its own (TCP, an HTTP CONNECT through a proxy when one applies, TLS, one request, the 101):
  afterwards the connection is a raw byte stream handed to the caller's asyncio Protocol,
  with nothing of aiohttp between the socket and the SPDY session.

RBAC differs per path (docs/protocols.md, section 5): a WebSocket upgrade is a GET (`get` on
pods/portforward, and from 1.35 also `create`), the SPDY POST needs `create`. Refusals raise
the same ApiError subclasses as REST calls, with the server's own words.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import socket
import ssl
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, NoReturn, cast
from urllib.parse import unquote

import aiohttp
from yarl import URL

from portfwd.kube.errors import ApiError, ClusterUnreachable, Forbidden, NotFound, fold_lines
from portfwd.kube.http import USER_AGENT, ProxyRefused, set_keepalive

if TYPE_CHECKING:
    from portfwd.kube.http import HttpCore

WS_MAX_MSG = 16 * 1024 * 1024  # the kubelet sends <= 32 KiB per frame; anything near this is bogus
_HEAD_LIMIT = 64 * 1024  # an HTTP response head longer than this is not an API server's
_BODY_LIMIT = 64 * 1024  # of a refusal's body, this much is read for its message


class UpgradeRefused(ApiError):
    """The server answered 101 but not with the protocol asked for (an old server or a proxy
    that does not know it): the caller may try another protocol."""


# --- WebSocket ------------------------------------------------------------------------------


async def open_websocket(
    client: HttpCore,
    path: str,
    params: Sequence[tuple[str, str]],
    protocol: str,
    *,
    what: str,
    ns: str,
    pod: str,
    accept_none: bool = False,
    heartbeat: float | None = None,
) -> aiohttp.ClientWebSocketResponse:
    """Upgrade GET `path` to a WebSocket speaking `protocol`.

    `accept_none`: a server that picks no subprotocol speaks the default one (the kubelet's
    binary channels), which is accepted; otherwise a 101 without `protocol` raises
    UpgradeRefused. Refusals raise ApiError subclasses with the server's reason.
    `heartbeat`: WebSocket pings (aiohttp's semantics); None when the protocol inside has its
    own (SPDY).
    """
    session = client.http_session()
    url = client.url(path).with_query(list(params))
    status = 0
    headers: Mapping[str, str] | None = None
    for attempt in (1, 2):
        options = await client.request_options()
        try:
            ws = await session.ws_connect(
                url,
                protocols=(protocol,),
                **options,
                heartbeat=heartbeat,
                max_msg_size=WS_MAX_MSG,
                autoclose=True,
                autoping=True,
                timeout=aiohttp.ClientWSTimeout(ws_receive=None, ws_close=5.0),
            )
        except aiohttp.WSServerHandshakeError as exc:
            status = exc.status
            headers = exc.headers
            if status == 401 and attempt == 1:
                client.refresh_credentials()
                continue
            break
        except (aiohttp.ClientError, TimeoutError, ssl.SSLError) as exc:
            raise client.connection_error(exc, what) from None
        if ws.protocol == protocol or (accept_none and ws.protocol is None):
            return ws
        await ws.close()
        raise UpgradeRefused(
            f"the API server does not speak {protocol} for {what} (it answered "
            f"{ws.protocol or 'no subprotocol'})",
            status=101,
        )
    if headers is not None and headers.get("Content-Length") == "0":
        raise refusal_error(client, status, b"", what=what, ns=ns, pod=pod)  # nothing to read
    await _explain_websocket_refusal(
        client, path, params, protocol, status, what=what, ns=ns, pod=pod
    )


async def _explain_websocket_refusal(
    client: HttpCore,
    path: str,
    params: Sequence[tuple[str, str]],
    protocol: str,
    status: int,
    *,
    what: str,
    ns: str,
    pod: str,
) -> NoReturn:
    """aiohttp drops the body of a refused upgrade: replay the same upgrade request as a plain
    one that reads the answer, to give the user the server's own words ("error dialing
    backend: ..." names the node that is down). It must ask for the upgrade again: without
    upgrade headers a real API server answers 400 "Upgrade request required" instead. If the
    upgrade works this time, the connection is dropped and the status is all there is."""
    session = client.http_session()
    url = client.url(path).with_query(list(params))
    options = await client.request_options()
    headers = {
        **options["headers"],
        "Connection": "Upgrade",
        "Upgrade": "websocket",
        "Sec-WebSocket-Version": "13",
        "Sec-WebSocket-Key": base64.b64encode(os.urandom(16)).decode(),
        "Sec-WebSocket-Protocol": protocol,
    }
    body = b""
    replayed = 0
    with contextlib.suppress(aiohttp.ClientError, TimeoutError, ssl.SSLError):
        async with session.get(
            url,
            headers=headers,
            ssl=options["ssl"],
            server_hostname=options["server_hostname"],
            proxy=options["proxy"],
            timeout=aiohttp.ClientTimeout(
                total=client.request_timeout, connect=client.connect_timeout
            ),
        ) as resp:
            replayed = resp.status
            if replayed == 101:
                resp.close()
            else:
                body = await resp.content.read(_BODY_LIMIT)
    if replayed == status:
        raise refusal_error(client, status, body, what=what, ns=ns, pod=pod)
    raise refusal_error(client, status, b"", what=what, ns=ns, pod=pod)


def refusal_error(
    client: HttpCore, status: int, body: bytes, *, what: str, ns: str, pod: str
) -> ApiError:
    """The error for a refused port-forward upgrade, from its status and body (maybe empty)."""
    if body:
        error = client.status_error(status, body, what=what, ns=ns)
        if status not in (401, 403, 404) and error.api_message:
            return ApiError(
                f"cannot port-forward to pod {pod}: {fold_lines(error.api_message)}",
                status=status,
                reason=error.reason,
                api_message=error.api_message,
            )
        if error.api_message or status not in (403, 404):
            return error
    if status == 403:
        return Forbidden(
            f'user "{client.conn.user}" may not port-forward to pod {pod} in namespace '
            f'"{ns}" (403 Forbidden, context "{client.context}"); ask your cluster admin for '
            'a Role granting both "get" and "create" on pods/portforward',
            status=403,
            reason="Forbidden",
        )
    if status == 404:
        return NotFound(
            f'pods "{pod}" not found in namespace "{ns}"', status=404, reason="NotFound"
        )
    if status == 401:
        return client.status_error(401, b"", what=what, ns=ns)
    return ApiError(
        f"the API server refused the port-forward upgrade to pod {pod} ({status}, "
        f'context "{client.context}")',
        status=status,
    )


# --- a raw HTTP/1.1 upgrade -----------------------------------------------------------------


@dataclass
class RawUpgrade:
    """An upgraded connection: its transport, and what the server sent after the 101."""

    transport: asyncio.Transport
    headers: dict[str, str]  # the 101's headers, names lowercased
    tail: bytes

    def attach(self, protocol: asyncio.Protocol | asyncio.BufferedProtocol) -> None:
        """Hand the connection to `protocol` (which sees connection_made, then the tail)."""
        self.transport.set_protocol(protocol)
        protocol.connection_made(self.transport)
        tail, self.tail = self.tail, b""
        if isinstance(protocol, asyncio.BufferedProtocol):
            while tail:
                buf = memoryview(protocol.get_buffer(len(tail)))
                n = min(len(buf), len(tail))
                buf[:n] = tail[:n]
                protocol.buffer_updated(n)
                tail = tail[n:]
        elif tail:
            protocol.data_received(tail)


class _Handshake(asyncio.Protocol):
    """Collects the response head (and whatever follows) until the caller takes over."""

    def __init__(self) -> None:
        self.buffer = bytearray()
        self.changed = asyncio.Event()
        self.lost: Exception | None = None
        self.eof = False
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # asyncio's, or another loop's (uvloop's are not asyncio.Transport subclasses)
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        self.changed.set()

    def eof_received(self) -> bool:
        self.eof = True
        self.changed.set()
        return True

    def connection_lost(self, exc: Exception | None) -> None:
        self.eof = True
        self.lost = exc or ConnectionResetError("connection closed")
        self.changed.set()

    async def read_until(self, marker: bytes, limit: int) -> int:
        """Index just past `marker` in the buffer; ConnectionError if the peer ends first."""
        while True:
            at = self.buffer.find(marker)
            if at >= 0:
                return at + len(marker)
            if len(self.buffer) > limit:
                raise ConnectionResetError(f"response head longer than {limit} bytes")
            if self.eof:
                raise ConnectionResetError("the server closed the connection")
            self.changed.clear()
            await self.changed.wait()

    async def read_more(self, want: int) -> None:
        """Wait until `want` bytes are buffered, or the peer ends."""
        while len(self.buffer) < want and not self.eof:
            self.changed.clear()
            await self.changed.wait()


def _parse_head(raw: bytes) -> tuple[int, dict[str, str]]:
    """(status, headers) of an HTTP/1.1 response head (names lowercased, repeats joined)."""
    lines = raw.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/") or not parts[1].isdigit():
        raise ConnectionResetError(f"not an HTTP response: {lines[0][:80]!r}")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if not line:
            continue
        name, _, value = line.partition(":")
        key = name.strip().lower()
        headers[key] = f"{headers[key]}, {value.strip()}" if key in headers else value.strip()
    return int(parts[1]), headers


def _keepalive(transport: asyncio.BaseTransport) -> None:
    sock = transport.get_extra_info("socket")
    if sock is None:
        return
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        set_keepalive(sock)


async def _connect(
    client: HttpCore, ctx: ssl.SSLContext | None
) -> tuple[asyncio.Transport, _Handshake]:
    """TCP (through the proxy with CONNECT when one applies), then TLS to the API server."""
    loop = asyncio.get_running_loop()
    base = client.base
    host = base.host or ""
    port = base.explicit_port or (443 if base.scheme == "https" else 80)
    server_hostname = client.conn.tls_server_name or host
    proxy = URL(client.proxy) if client.proxy else None
    if proxy is None:
        transport, handshake = await loop.create_connection(
            _Handshake,
            host,
            port,
            ssl=ctx,
            server_hostname=server_hostname if ctx else None,
        )
        _keepalive(transport)
        return transport, handshake
    proxy_ctx = ssl.create_default_context() if proxy.scheme == "https" else None
    try:
        transport, handshake = await loop.create_connection(
            _Handshake,
            proxy.host or "",
            proxy.explicit_port or (443 if proxy.scheme == "https" else 80),
            ssl=proxy_ctx,
        )
    except OSError as exc:  # ssl.SSLError included: the proxy's own TLS
        raise ProxyRefused(0, exc.strerror or str(exc) or type(exc).__name__) from None
    _keepalive(transport)
    authority = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    request = f"CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n"
    if proxy.user is not None:
        pair = f"{unquote(proxy.user)}:{unquote(proxy.password or '')}".encode()
        request += f"Proxy-Authorization: Basic {base64.b64encode(pair).decode()}\r\n"
    transport.write((request + "\r\n").encode())
    try:
        end = await handshake.read_until(b"\r\n\r\n", _HEAD_LIMIT)
        status, _ = _parse_head(bytes(handshake.buffer[:end]))
    except BaseException:
        transport.abort()
        raise
    if status != 200:
        transport.abort()
        raise ProxyRefused(status, f"to CONNECT {authority}")
    del handshake.buffer[:end]
    if ctx is None:
        return transport, handshake
    tls = await loop.start_tls(transport, handshake, ctx, server_hostname=server_hostname)
    if tls is None:
        raise ConnectionResetError("TLS to the API server through the proxy failed")
    return tls, handshake


async def open_raw_upgrade(
    client: HttpCore,
    path: str,
    params: Sequence[tuple[str, str]],
    *,
    upgrade: str,
    headers: dict[str, str],
    what: str,
    ns: str,
    pod: str,
) -> RawUpgrade:
    """POST `path` asking to switch to `upgrade`; the connection once the server said 101.

    Refusals raise ApiError subclasses with the server's words (the body is at hand here, so
    nothing is replayed); connection failures raise ClusterUnreachable. A 101 whose `Upgrade`
    names another protocol raises UpgradeRefused.
    """
    for attempt in (1, 2):
        options = await client.request_options()
        ctx: ssl.SSLContext | None = None
        if client.base.scheme == "https":
            opt = options["ssl"]
            ctx = opt if isinstance(opt, ssl.SSLContext) else ssl.create_default_context()
        try:
            async with asyncio.timeout(client.connect_timeout):
                transport, handshake = await _connect(client, ctx)
        except (OSError, ssl.SSLError, TimeoutError, ProxyRefused) as exc:
            raise client.connection_error(exc, what, connecting=True) from None
        try:
            status, head, tail = await _request(
                client, transport, handshake, path, params, upgrade, headers, options
            )
        except BaseException as exc:
            transport.abort()
            if isinstance(exc, OSError | TimeoutError | ssl.SSLError):
                raise client.connection_error(exc, what) from None
            raise
        if status == 101 and head.get("upgrade", "").lower() == upgrade.lower():
            return RawUpgrade(transport, head, tail)
        transport.abort()
        if status == 101:
            raise UpgradeRefused(
                f"the API server switched {what} to {head.get('upgrade')!r}, not {upgrade}",
                status=101,
            )
        if status == 401 and attempt == 1:
            client.refresh_credentials()
            continue
        raise refusal_error(client, status, tail, what=what, ns=ns, pod=pod)
    raise AssertionError("unreachable")


async def _request(
    client: HttpCore,
    transport: asyncio.Transport,
    handshake: _Handshake,
    path: str,
    params: Sequence[tuple[str, str]],
    upgrade: str,
    headers: dict[str, str],
    options: object,
) -> tuple[int, dict[str, str], bytes]:
    """Send the upgrade request; (status, headers, tail or body) of the answer."""
    url = client.url(path).with_query(list(params))
    base = client.base
    host = base.host or ""
    authority = f"[{host}]:{base.port}" if ":" in host else f"{host}:{base.port}"
    if base.explicit_port is None:
        authority = f"[{host}]" if ":" in host else host
    lines = [
        f"POST {url.raw_path_qs} HTTP/1.1",
        f"Host: {authority}",
        f"User-Agent: {USER_AGENT}",
        "Content-Length: 0",
        "Connection: Upgrade",
        f"Upgrade: {upgrade}",
    ]
    assert isinstance(options, dict)
    for name, value in {**options["headers"], **headers}.items():
        lines.append(f"{name}: {value}")
    transport.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
    async with asyncio.timeout(client.request_timeout):
        end = await handshake.read_until(b"\r\n\r\n", _HEAD_LIMIT)
        status, head = _parse_head(bytes(handshake.buffer[:end]))
        if status != 101:
            length = head.get("content-length", "")
            want = end + min(int(length) if length.isdigit() else _BODY_LIMIT, _BODY_LIMIT)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(1.0):
                    await handshake.read_more(want)
            body = bytes(handshake.buffer[end:want])
            if "chunked" in head.get("transfer-encoding", "").lower():
                body = _dechunk(body)
            return status, head, body
    tail = bytes(handshake.buffer[end:])
    handshake.buffer.clear()
    return status, head, tail


def _dechunk(body: bytes) -> bytes:
    """The payload of a (possibly cut) chunked body, as far as it goes."""
    out = bytearray()
    pos = 0
    while True:
        eol = body.find(b"\r\n", pos)
        if eol < 0:
            break
        try:
            size = int(body[pos:eol].split(b";", 1)[0], 16)
        except ValueError:
            break
        if size == 0:
            break
        out += body[eol + 2 : eol + 2 + size]
        pos = eol + 2 + size + 2
    return bytes(out)


__all__ = [
    "WS_MAX_MSG",
    "ClusterUnreachable",
    "RawUpgrade",
    "UpgradeRefused",
    "open_raw_upgrade",
    "open_websocket",
    "refusal_error",
]
