"""The kubelet's SPDY port-forward, as kubectl speaks it, in plain and WebSocket-tunnelled form.

kubectl 1.31+ first opens a WebSocket offering `SPDY/3.1+portforward.k8s.io` (KEP-4006: the API
server terminates it and every binary message carries raw SPDY bytes), and falls back to
`POST` with `Upgrade: SPDY/3.1` when that fails. Either way one SPDY session carries every local
connection: per connection the client opens an error stream and a data stream (headers
`streamType`, `port`, `requestID`); the kubelet pairs them by request id, dials the pod port and
copies both ways. Behaviour follows `pkg/kubelet/cri/streaming/portforward/httpstream.go`,
apimachinery's `httpstream` handshake and SPDY upgrader, and client-go's `portforward.go`.

One deliberate difference from containerd: when the client half-closes (FIN on the data
stream) the pod connection is half-closed too (`write_eof`) and bytes keep flowing from the pod
until it closes, instead of containerd's 1-second grace. When the pod closes first, the client
direction gets `close_linger` seconds to finish, as containerd gives it.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, cast

from aiohttp import WSMsgType, web

from portfwd.constants import (
    HEADER_PROTOCOL_VERSION,
    PORTFORWARD_PROTOCOL,
    SPDY_TUNNEL_PROTOCOL,
    SPDY_UPGRADE,
)
from portfwd.sandbox.portforward import (
    Dial,
    _copy_reason,
    _dial_reason,
    _go_quote,
    _parse_uint16,
    validate_ports_query,
)
from portfwd.sandbox.spdy import SpdySession, SpdyStream

__all__ = [
    "PORTFORWARD_PROTOCOL",
    "SPDY_TUNNEL_PROTOCOL",
    "is_spdy_portforward",
    "serve_portforward_spdy",
]

log = logging.getLogger(__name__)

HEADER_ACCEPTED_PROTOCOLS = "X-Accepted-Stream-Protocol-Versions"

# The kubelet's defaults (--streaming-connection-idle-timeout aside).
STREAM_CREATION_TIMEOUT = 30.0
READ_CHUNK = 32 * 1024  # Go's io.Copy buffer: the pod side is read in pieces this size
SOURCE_LIMIT = 64 * 1024  # the plain form pauses the socket past 2x this much unparsed input
WS_MAX_MESSAGE = 32 * 1024 * 1024
COALESCE_LIMIT = 1024 * 1024  # bytes queued for the client before senders wait

_session_ids = itertools.count(1)


# --- which requests are ours -----------------------------------------------------------------


def _offered_ws_protocols(request: web.Request) -> list[str]:
    header = request.headers.get("Sec-WebSocket-Protocol", "")
    return [p.strip() for p in header.split(",") if p.strip()]


def _is_websocket(request: web.Request) -> bool:
    return request.headers.get("Upgrade", "").strip().lower() == "websocket"


def is_spdy_portforward(request: web.Request) -> bool:
    """A WebSocket offering the SPDY tunnel, or an `Upgrade: SPDY/3.1` request."""
    if _is_websocket(request):
        return SPDY_TUNNEL_PROTOCOL in _offered_ws_protocols(request)
    return SPDY_UPGRADE.lower() in request.headers.get("Upgrade", "").lower()


# --- the kubelet's stream pairing ------------------------------------------------------------


def _validate_stream(stream: SpdyStream) -> str | None:
    """httpStreamReceived: a usable `port` and a known `streamType`, or why not."""
    port_text = stream.header("port")
    if not port_text:
        return '"port" header is required'
    parsed = _parse_uint16(port_text)
    if isinstance(parsed, str):
        return f"unable to parse {_go_quote(port_text)} as a port: {parsed}"
    if parsed < 1:
        return f"port {_go_quote(port_text)} must be > 0"
    stream_type = stream.header("streamType")
    if not stream_type:
        return '"streamType" header is required'
    if stream_type not in ("error", "data"):
        return f"invalid stream type {_go_quote(stream_type)}"
    return None


@dataclass(eq=False)
class _Pair:
    request_id: str
    data: SpdyStream | None = None
    error: SpdyStream | None = None
    complete: asyncio.Event = field(default_factory=asyncio.Event)


class _Forwarder:
    """One SPDY session's port-forward requests (httpStreamHandler)."""

    ERROR_DELAY = 0.05  # CRI-O's order: how long after the data stream's close the reason comes

    def __init__(
        self,
        *,
        pod_name: str,
        pod_uid: str,
        dial: Dial,
        close_linger: float,
        stream_creation_timeout: float,
        error_after_close: bool = False,
    ) -> None:
        self._pod_name = pod_name
        self._pod_uid = pod_uid
        self._dial = dial
        self._close_linger = close_linger
        self._error_after_close = error_after_close
        self._creation_timeout = stream_creation_timeout
        self._pairs: dict[str, _Pair] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()
        self.name = f"spdy-portforward-{next(_session_ids)}"

    def _spawn(self, coro: Any, name: str) -> None:
        task: asyncio.Task[None] = asyncio.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def on_stream(self, stream: SpdyStream) -> None:
        request_id = stream.header("requestID")
        stream_type = stream.header("streamType")
        if not request_id:
            # Clients older than request ids: error stream id N, data stream id N+2.
            offset = 0 if stream_type == "error" else 2
            request_id = str(stream.stream_id - offset)
        pair = self._pairs.get(request_id)
        if pair is None:
            pair = self._pairs[request_id] = _Pair(request_id)
            self._spawn(self._monitor(pair), f"{self.name}-monitor-{request_id}")
        slot = "error" if stream_type == "error" else "data"
        if getattr(pair, slot) is not None:
            message = (
                f"error processing stream for request {request_id}: {slot} stream already assigned"
            )
            log.debug("%s", message)
            stream.release()
            if pair.error is not None:
                self._spawn(self._print(pair.error, message), f"{self.name}-error")
            return
        setattr(pair, slot, stream)
        if pair.data is not None and pair.error is not None:
            pair.complete.set()
            self._spawn(self._forward(pair), f"{self.name}-forward-{request_id}")

    async def _monitor(self, pair: _Pair) -> None:
        try:
            await asyncio.wait_for(pair.complete.wait(), self._creation_timeout)
        except TimeoutError:
            message = f"(conn={self.name}, request={pair.request_id}) timed out waiting for streams"
            log.debug("%s", message)
            if pair.error is not None:
                await self._print(pair.error, message)
            for stream in (pair.data, pair.error):
                if stream is not None:
                    stream.release()
        finally:
            self._pairs.pop(pair.request_id, None)

    @staticmethod
    async def _print(stream: SpdyStream, message: str) -> None:
        with contextlib.suppress(ConnectionError):
            await stream.write(message.encode())

    async def _forward(self, pair: _Pair) -> None:
        """portForward: dial, copy, then close both streams (FIN) as the kubelet's defers do."""
        data, error = pair.data, pair.error
        assert data is not None and error is not None
        port = int(data.header("port"))
        try:
            reason = await self._copy(data, port)
            if reason is not None:
                message = (
                    f"error forwarding port {port} to pod {self._pod_name}, "
                    f"uid {self._pod_uid}: {reason}"
                )
                log.debug("%s", message)
                if self._error_after_close:
                    # CRI-O's order: the data stream is closed before the reason is written.
                    with contextlib.suppress(ConnectionError):
                        await data.close()
                    await asyncio.sleep(self.ERROR_DELAY)
                await self._print(error, message)
        finally:
            for stream in (error, data):
                with contextlib.suppress(ConnectionError):
                    await stream.close()
                stream.release()

    async def _copy(self, data: SpdyStream, port: int) -> str | None:
        """Both directions for one connection; the runtime's error text, or None."""
        try:
            reader, writer = await self._dial(port)
        except Exception as exc:  # OSError for a refused port; anything else is a sandbox bug
            if not isinstance(exc, OSError):
                log.exception("dialling port %d of pod %s failed", port, self._pod_name)
            return _dial_reason(port, self._pod_name, exc)
        self._writers.add(writer)
        upstream = asyncio.create_task(self._client_to_pod(data, writer), name=f"{self.name}-up")
        try:
            try:
                while True:
                    chunk = await reader.read(READ_CHUNK)
                    if not chunk:
                        break
                    await data.write(chunk)
            except ConnectionError as exc:
                if data.reset or data.released or data.session.closed:
                    return None  # the client went away: nobody to tell
                return _copy_reason(port, writer, exc)
            except OSError as exc:
                return _copy_reason(port, writer, exc)
            # The pod closed its side: FIN to the client, then give the client's direction a
            # moment to finish, as containerd does.
            with contextlib.suppress(ConnectionError):
                await data.close()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(upstream), self._close_linger)
            return None
        finally:
            upstream.cancel()
            await asyncio.gather(upstream, return_exceptions=True)
            writer.close()
            self._writers.discard(writer)

    @staticmethod
    async def _client_to_pod(data: SpdyStream, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                chunk = await data.read()
                if not chunk:
                    break
                writer.write(chunk)
                await writer.drain()
            if data.reset or data.released or data.session.closed:
                # Reset or gone, not a half-close: drop the pod connection, which also ends
                # the other direction's wait for pod data.
                writer.close()
            elif writer.can_write_eof():
                writer.write_eof()  # the client half-closed: so does the pod connection
        except (ConnectionError, RuntimeError):
            pass  # the pod side is gone; the other direction notices on its own

    async def shutdown(self) -> None:
        for writer in list(self._writers):
            writer.close()
        while self._tasks:
            tasks = list(self._tasks)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)


# --- the two transports ----------------------------------------------------------------------


class _WebSocketSource:
    """SPDY bytes from binary WebSocket messages (message boundaries mean nothing).

    Go's framer writes a DATA frame as three messages (stream id, flags and length, payload),
    so a payload is usually one whole message: handed over without copying.
    """

    def __init__(self, ws: web.WebSocketResponse) -> None:
        self._ws = ws
        self._chunks: deque[bytes] = deque()
        self._size = 0

    async def readexactly(self, n: int) -> bytes:
        while self._size < n:
            msg = await self._ws.receive()
            if msg.type is WSMsgType.BINARY:
                if msg.data:
                    self._chunks.append(msg.data)
                    self._size += len(msg.data)
            elif msg.type is WSMsgType.TEXT:
                raise ConnectionResetError("text message on a SPDY tunnel")
            else:  # CLOSE / CLOSING / CLOSED / ERROR
                raise asyncio.IncompleteReadError(b"".join(self._chunks), n)
        self._size -= n
        first = self._chunks[0]
        if len(first) == n:
            return self._chunks.popleft()
        if len(first) > n:
            self._chunks[0] = first[n:]
            return first[:n]
        parts = []
        while n:
            chunk = self._chunks.popleft()
            if len(chunk) > n:
                self._chunks.appendleft(chunk[n:])
                chunk = chunk[:n]
            parts.append(chunk)
            n -= len(chunk)
        return b"".join(parts)


class _ReaderFeed:
    """Stands in for aiohttp's payload parser after the upgrade: raw bytes into a StreamReader.

    The StreamReader pauses the socket when too much unparsed input piles up, so a session
    whose streams are all busy stops reading the connection.
    """

    def __init__(self, reader: asyncio.StreamReader) -> None:
        self._reader = reader

    def feed_data(self, data: bytes) -> tuple[bool, bytes]:
        self._reader.feed_data(data)
        return False, b""

    def feed_eof(self) -> None:
        self._reader.feed_eof()


class _UpgradeResponse(web.StreamResponse):
    """A 101 whose body is the upgraded protocol: no chunking, no length."""

    _length_check = False


class _Coalescer:
    """Frames sent in one turn of the event loop leave in one write.

    The API server in front of a kubelet does this without trying: its proxy copies whatever
    it read from the kubelet, so frames the kubelet wrote one by one (two SYN_REPLYs, a FIN)
    leave in one TLS record when they were ready together. Senders wait only while more than
    :data:`COALESCE_LIMIT` bytes are queued.
    """

    def __init__(self, send: Callable[[bytes], Awaitable[None]]) -> None:
        self._send = send
        self._pending: list[bytes] = []
        self._size = 0
        self._space = asyncio.Event()
        self._space.set()
        self._error: ConnectionError | None = None
        self._task: asyncio.Task[None] | None = None

    async def send(self, data: bytes) -> None:
        if self._error is not None:
            raise self._error
        self._pending.append(data)
        self._size += len(data)
        if self._task is None:
            self._task = asyncio.create_task(self._flush())
        if self._size > COALESCE_LIMIT:
            self._space.clear()
            await self._space.wait()
            if self._error is not None:
                raise self._error

    async def _flush(self) -> None:
        try:
            await asyncio.sleep(0)  # what else this loop turn sends
            while self._pending:
                chunk = b"".join(self._pending)
                self._pending.clear()
                self._size = 0
                self._space.set()
                await self._send(chunk)
        except (ConnectionError, RuntimeError) as exc:
            self._error = ConnectionResetError(f"connection closed ({exc})")
            self._pending.clear()
            self._space.set()
        finally:
            self._task = None

    async def aclose(self) -> None:
        task = self._task
        if task is not None:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(2.0):
                    await asyncio.shield(task)
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)


def _bad_request(text: str, status: int = 400) -> web.Response:
    """net/http's http.Error: the text plus a newline, text/plain, nosniff."""
    return web.Response(
        status=status,
        text=text + "\n",
        content_type="text/plain",
        charset="utf-8",
        headers={"X-Content-Type-Options": "nosniff"},
    )


def _handshake(request: web.Request) -> web.Response | None:
    """httpstream.Handshake for the plain form: the client must offer portforward.k8s.io."""
    offered = [
        p.strip()
        for value in request.headers.getall(HEADER_PROTOCOL_VERSION, [])
        for p in value.split(",")
        if p.strip()
    ]
    if not offered:
        # Go counts the header names of the request the kubelet got: not Host (a field of
        # its own in Go), not Authorization (the API server's authentication removed it), and
        # the X-Forwarded-For the API server's proxy added.
        names = {name.lower() for name in request.headers} - {"host", "authorization"}
        names.add("x-forwarded-for")
        return _bad_request(
            f"unable to upgrade: header {HEADER_PROTOCOL_VERSION} does not exist in request "
            f"with {len(names)} headers"
        )
    if PORTFORWARD_PROTOCOL not in offered:
        response = _bad_request(
            "unable to upgrade: unable to negotiate protocol: "
            f"client supports [{' '.join(offered)}], server accepts [{PORTFORWARD_PROTOCOL}]",
            status=403,
        )
        response.headers[HEADER_ACCEPTED_PROTOCOLS] = PORTFORWARD_PROTOCOL
        return response
    connection = request.headers.get("Connection", "").lower()
    if "upgrade" not in connection:
        return _bad_request("unable to upgrade: missing upgrade headers in request")
    return None


async def _run_session(session: SpdySession, forwarder: _Forwarder) -> None:
    try:
        await session.run()
    finally:
        session.close()
        await forwarder.shutdown()


async def serve_portforward_spdy(
    request: web.Request,
    *,
    pod_name: str,
    pod_uid: str,
    dial: Dial,
    close_linger: float = 1.0,
    stream_creation_timeout: float = STREAM_CREATION_TIMEOUT,
    on_upgrade: Callable[[], None] | None = None,
    on_tunnel: Callable[[Callable[[], None]], None] | None = None,
    error_after_close: bool = False,
) -> web.StreamResponse:
    """Serve a SPDY port-forward request once the API server would hand it to the kubelet.

    Takes both forms `is_spdy_portforward` recognises: the WebSocket tunnel (answered with
    subprotocol `SPDY/3.1+portforward.k8s.io`) and the plain `Upgrade: SPDY/3.1` (answered 101
    with `X-Stream-Protocol-Version: portforward.k8s.io`). Returns when the client goes away;
    every pod connection it opened is closed by then. `on_upgrade` is called once the 101 is
    sent; `on_tunnel(orphan)`, for the WebSocket form, hands over what makes the session an
    orphan (its kubelet gone, its WebSocket kept: see SpdySession.orphan). With
    `error_after_close` a failed connection's data stream is closed before its error text is
    written (CRI-O's order; containerd's is the reverse).
    """
    problem = validate_ports_query(request)  # the API server converts `ports` for both forms
    if problem is not None:
        return problem
    forwarder = _Forwarder(
        pod_name=pod_name,
        pod_uid=pod_uid,
        dial=dial,
        close_linger=close_linger,
        stream_creation_timeout=stream_creation_timeout,
        error_after_close=error_after_close,
    )
    if _is_websocket(request):
        if SPDY_TUNNEL_PROTOCOL not in _offered_ws_protocols(request):
            return web.Response(status=403, body=b"")
        ws = web.WebSocketResponse(
            protocols=(SPDY_TUNNEL_PROTOCOL,),
            compress=False,
            autoping=True,
            max_msg_size=WS_MAX_MESSAGE,
        )
        await ws.prepare(request)
        if on_upgrade is not None:
            on_upgrade()
        sender = _Coalescer(ws.send_bytes)
        session = SpdySession(
            _WebSocketSource(ws),
            sender.send,
            validate=_validate_stream,
            on_stream=forwarder.on_stream,
            name=forwarder.name,
        )
        if on_tunnel is not None:
            on_tunnel(session.orphan)
        with contextlib.suppress(ConnectionError):
            await _run_session(session, forwarder)
        await sender.aclose()
        with contextlib.suppress(ConnectionError):
            await ws.close()
        return ws

    refusal = _handshake(request)
    if refusal is not None:
        return refusal
    transport = request.transport
    if transport is None:
        raise ConnectionResetError("client went away before the upgrade")
    reader = asyncio.StreamReader(limit=SOURCE_LIMIT)
    reader.set_transport(transport)
    # Bytes after the request belong to SPDY from now on; the client sends none before our 101,
    # so installing the feed before answering loses nothing.
    cast(Any, request.protocol).set_parser(_ReaderFeed(reader))
    response = _UpgradeResponse(
        status=101,
        headers={
            "Connection": "Upgrade",
            "Upgrade": SPDY_UPGRADE,
            HEADER_PROTOCOL_VERSION: PORTFORWARD_PROTOCOL,
        },
    )
    response.force_close()
    payload_writer = await response.prepare(request)
    assert payload_writer is not None
    if on_upgrade is not None:
        on_upgrade()

    async def send(data: bytes) -> None:
        if transport.is_closing():
            raise ConnectionResetError("connection closed")
        transport.write(data)
        await payload_writer.drain()

    sender = _Coalescer(send)
    session = SpdySession(
        reader,
        sender.send,
        validate=_validate_stream,
        on_stream=forwarder.on_stream,
        name=forwarder.name,
    )
    with contextlib.suppress(ConnectionError):
        await _run_session(session, forwarder)
    await sender.aclose()
    transport.close()
    return response
