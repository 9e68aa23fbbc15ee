"""The kubelet's side of the legacy WebSocket port-forward protocol, served by the sandbox.

Behaviour follows the kubelet (`pkg/kubelet/cri/streaming/portforward/websocket.go`,
apimachinery `wsstream/conn.go`), containerd's copy loop and what a real API server answered
when measured (docs/protocols.md, section 4): the client side is tested against this, so every
status code, error text, frame and close must be the one a real cluster produces.

The route in front of this handler (authentication, RBAC, pod lookup) belongs to the server
module; this module starts where the API server has accepted the request and the kubelet takes
over, plus the API server's own conversion of the `ports` query.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import json
import logging
import os
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

from aiohttp import WSMsgType, web

from portfwd.constants import (
    DATA_CHANNEL_OFFSET,
    ERROR_CHANNEL_OFFSET,
    PORTFORWARD_V4_BASE64,
    PORTFORWARD_V4_BINARY,
)

__all__ = [
    "Dial",
    "negotiate_subprotocol",
    "serve_portforward",
    "validate_ports_query",
]

log = logging.getLogger(__name__)

Dial = Callable[[int], Awaitable[tuple[asyncio.StreamReader, asyncio.StreamWriter]]]

# The kubelet registers these three for port-forward: "" means "no subprotocol offered".
_CHANNEL_PROTOCOLS: dict[str, bool] = {  # name -> base64 codec
    "": False,
    PORTFORWARD_V4_BINARY: False,
    PORTFORWARD_V4_BASE64: True,
}

# Read from the pod's port in chunks of this size: large enough for throughput, small enough
# that one frame never holds much memory (the WebSocket writer drains after each send).
READ_CHUNK = 64 * 1024
# golang.org/x/net/websocket's default limit for one incoming message.
MAX_CLIENT_MESSAGE = 32 * 1024 * 1024
# How long a close frame waits for the client's answer before the socket is dropped.
CLOSE_HANDSHAKE_TIMEOUT = 2.0


# --- query validation -----------------------------------------------------------------------


def _go_quote(text: str) -> str:
    """strconv.Quote, so error texts quote odd input exactly as the API server does."""
    out = ['"']
    escapes = {"\a": "\\a", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t"}
    escapes["\v"] = "\\v"
    for ch in text:
        if ch in ('"', "\\"):
            out.append("\\" + ch)
        elif ch in escapes:
            out.append(escapes[ch])
        elif ch.isprintable():
            out.append(ch)
        elif ord(ch) < 0x80:
            out.append(f"\\x{ord(ch):02x}")
        elif ord(ch) < 0x10000:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(f"\\U{ord(ch):08x}")
    out.append('"')
    return "".join(out)


def _parse_uint16(text: str) -> int | str:
    """strconv.ParseUint(text, 10, 16): the value, or Go's error text.

    Go reports "out of range" as soon as the digits so far overflow, even when a bad character
    follows, and rejects signs, spaces and underscores as syntax errors.
    """
    quoted = _go_quote(text)
    if not text:
        return f"strconv.ParseUint: parsing {quoted}: invalid syntax"
    value = 0
    for ch in text:
        if not "0" <= ch <= "9":
            return f"strconv.ParseUint: parsing {quoted}: invalid syntax"
        value = value * 10 + (ord(ch) - 48)
        if value > 0xFFFF:
            return f"strconv.ParseUint: parsing {quoted}: value out of range"
    return value


def _status_response(status: int, reason: str, message: str) -> web.Response:
    """A metav1.Status body, as the API server writes for its own errors."""
    body = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": status,
    }
    return web.Response(
        status=status,
        body=json.dumps(body, separators=(",", ":")).encode(),
        content_type="application/json",
    )


def _plain_error(status: int, text: str) -> web.Response:
    """go-restful's WriteError: the bare message, sniffed as text/plain, no newline."""
    return web.Response(status=status, text=text, content_type="text/plain", charset="utf-8")


def _convert_ports(request: web.Request) -> list[int] | web.Response:
    """The API server's conversion of `ports` (repeated and/or comma lists) to []int32."""
    ports: list[int] = []
    for value in request.query.getall("ports", []):
        for item in value.split(","):
            parsed = _parse_uint16(item)
            if isinstance(parsed, str):
                return _status_response(400, "BadRequest", f"cannot convert to []int32: {parsed}")
            ports.append(parsed)
    return ports


def validate_ports_query(request: web.Request) -> web.Response | None:
    """The API server's own 400 for an unparsable `ports` query, or None when it converts.

    A real API server converts the query before it looks the pod up, so a route that wants the
    exact order of errors (400 for `ports=abc` even on a missing pod) calls this first.
    `serve_portforward` checks again, so calling it is optional.
    """
    result = _convert_ports(request)
    return result if isinstance(result, web.Response) else None


def _kubelet_port_check(ports: Sequence[int]) -> web.Response | None:
    """The kubelet's NewV4Options checks, on the `port` value the API server rewrote."""
    if not ports:
        # Measured with a newline, unlike the other texts of this check.
        return _plain_error(400, 'query parameter "port" is required\n')
    if any(port < 1 for port in ports):
        # The API server forwards every port as one comma-joined `port` value, and the kubelet
        # quotes that whole value.
        joined = ",".join(str(port) for port in ports)
        return _plain_error(400, f"port {_go_quote(joined)} must be > 0")
    return None


def _is_websocket_request(request: web.Request) -> bool:
    """wsstream.IsWebSocketRequest: Upgrade: websocket and a Connection header naming upgrade."""
    if request.headers.get("Upgrade", "").lower() != "websocket":
        return False
    tokens = [t.strip().lower() for t in request.headers.get("Connection", "").split(",")]
    return "upgrade" in tokens


def negotiate_subprotocol(request: web.Request) -> str | None:
    """The subprotocol the kubelet picks: the client's first acceptable one, else None.

    Like golang.org/x/net/websocket, only the first Sec-WebSocket-Protocol header counts, and
    no offer at all means the empty protocol (binary, no header in the answer).
    """
    header = request.headers.get("Sec-WebSocket-Protocol", "").strip()
    offered = [p.strip() for p in header.split(",")] if header else [""]
    for protocol in offered:
        if protocol in _CHANNEL_PROTOCOLS:
            return protocol
    return None


# --- the upgraded connection ----------------------------------------------------------------


def _dial_reason(port: int, pod_name: str, exc: BaseException) -> str:
    """The runtime's text for a failed dial, Go-style: `dial tcp 127.0.0.1:P: connect: ...`."""
    message = str(exc)
    marker = message.rfind("connect: ")
    if marker >= 0:
        reason = message[marker:]
    elif isinstance(exc, OSError) and exc.errno:
        text = os.strerror(exc.errno)
        reason = "connect: " + text[:1].lower() + text[1:]
    elif isinstance(exc, TimeoutError):
        reason = "i/o timeout"
    elif isinstance(exc, ConnectionRefusedError) or not message:
        reason = "connect: connection refused"
    else:
        reason = "connect: " + message
    return (
        f"failed to connect to localhost:{port} inside namespace of pod {_go_quote(pod_name)}: "
        f"dial tcp 127.0.0.1:{port}: {reason}"
    )


def _copy_reason(port: int, writer: asyncio.StreamWriter | None, exc: BaseException) -> str:
    """Go's io.Copy error for a pod connection that broke after it was set up."""
    if isinstance(exc, OSError) and exc.errno:
        text = os.strerror(exc.errno)
        local = writer.get_extra_info("sockname") if writer is not None else None
        source = f"127.0.0.1:{local[1]}->" if isinstance(local, tuple) else ""
        return f"read tcp {source}127.0.0.1:{port}: read: {text[:1].lower()}{text[1:]}"
    return str(exc) or type(exc).__name__


@dataclass(eq=False)
class _PortStream:
    """One requested port: its two channels and its connection to the pod."""

    index: int
    port: int
    reader: asyncio.StreamReader | None = None
    writer: asyncio.StreamWriter | None = None
    dialed: asyncio.Event = field(default_factory=asyncio.Event)
    # Set when the client-to-pod direction is over (client gone, or writing to the pod failed).
    upstream_done: asyncio.Event = field(default_factory=asyncio.Event)
    failed: bool = False
    closed: bool = False

    @property
    def data_channel(self) -> int:
        return 2 * self.index + DATA_CHANNEL_OFFSET

    @property
    def error_channel(self) -> int:
        return 2 * self.index + ERROR_CHANNEL_OFFSET

    def close_backend(self) -> None:
        self.closed = True
        self.upstream_done.set()
        if self.writer is not None:
            self.writer.close()


class _Session:
    """One upgraded WebSocket: one pod connection per requested port, as the kubelet does."""

    def __init__(
        self,
        request: web.Request,
        ws: web.WebSocketResponse,
        *,
        base64_codec: bool,
        ports: Sequence[int],
        pod_name: str,
        pod_uid: str,
        dial: Dial,
        close_linger: float,
    ) -> None:
        self._request = request
        self._ws = ws
        self._base64 = base64_codec
        self._streams = [_PortStream(i, p) for i, p in enumerate(ports)]
        # Channel numbers are one byte: past 128 ports they wrap, and a frame goes to the first
        # port with that number, as in wsstream.
        self._by_channel: dict[int, _PortStream] = {}
        for stream in self._streams:
            self._by_channel.setdefault(stream.data_channel & 0xFF, stream)
        self._pod_name = pod_name
        self._pod_uid = pod_uid
        self._dial = dial
        self._close_linger = close_linger

    async def _send(self, channel: int, payload: bytes) -> None:
        if self._base64:
            text = chr((ord("0") + channel) & 0xFF) + base64.b64encode(payload).decode("ascii")
            await self._ws.send_str(text)
        else:
            await self._ws.send_bytes(bytes((channel & 0xFF,)) + payload)

    async def run(self) -> None:
        try:
            for stream in self._streams:
                prefix = stream.port.to_bytes(2, "little")
                await self._send(stream.data_channel, prefix)
                await self._send(stream.error_channel, prefix)
                # Let a lost connection be noticed between ports: else every further frame
                # of a 1000-port request goes to a dead socket, each with asyncio's warning.
                await asyncio.sleep(0)
        except ConnectionError:
            log.warning(
                "port-forward to pod %s: the client went away before the prefix frames of "
                "its %d ports were sent",
                self._pod_name,
                len(self._streams),
            )
            return
        ports = asyncio.create_task(self._run_ports(), name="portforward-ports")
        receiver = asyncio.create_task(self._receive_loop(), name="portforward-receive")
        try:
            await asyncio.wait({ports, receiver}, return_when=asyncio.FIRST_COMPLETED)
            if not ports.done():
                # The client went away first: tear the pod connections down at once.
                for stream in self._streams:
                    stream.close_backend()
                ports.cancel()
                await asyncio.gather(ports, return_exceptions=True)
            elif any(s.failed for s in self._streams):
                # The kubelet drops the connection after an error: no close frame (1006).
                # transport.close() still flushes the error text already written.
                transport = self._request.transport
                if transport is not None:
                    transport.close()
            else:
                await self._ws.close()
        finally:
            for stream in self._streams:
                stream.close_backend()
            ports.cancel()
            receiver.cancel()
            await asyncio.gather(ports, receiver, return_exceptions=True)

    async def _run_ports(self) -> None:
        """All ports in parallel; the kubelet ends the connection once every one is done."""
        tasks = [
            asyncio.create_task(self._forward(s), name=f"portforward-{s.port}")
            for s in self._streams
        ]
        try:
            await asyncio.gather(*tasks)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _forward(self, stream: _PortStream) -> None:
        """Dial the pod's port and copy pod-to-client, then linger like containerd."""
        try:
            stream.reader, stream.writer = await self._dial(stream.port)
        except Exception as exc:  # OSError for a refused port; anything else is a sandbox bug
            if not isinstance(exc, OSError):
                log.exception("dialling port %d of pod %s failed", stream.port, self._pod_name)
            stream.dialed.set()
            await self._fail(stream, _dial_reason(stream.port, self._pod_name, exc))
            return
        finally:
            stream.dialed.set()
        if stream.closed:  # the client left while we dialled
            stream.writer.close()
            return
        reader = stream.reader
        try:
            while True:
                data = await reader.read(READ_CHUNK)
                if not data:
                    break
                await self._send(stream.data_channel, data)
        except OSError as exc:
            if not self._ws.closed and not stream.closed:
                await self._fail(stream, _copy_reason(stream.port, stream.writer, exc))
            return
        # The pod closed its side: give the other direction a moment to finish, as containerd
        # (and CRI-O) do, then this port is done.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stream.upstream_done.wait(), self._close_linger)
        stream.close_backend()

    async def _fail(self, stream: _PortStream, reason: str) -> None:
        stream.failed = True
        stream.close_backend()
        message = (
            f"error forwarding port {stream.port} to pod {self._pod_name}, "
            f"uid {self._pod_uid}: {reason}"
        )
        log.debug("%s", message)
        with contextlib.suppress(ConnectionError, RuntimeError):
            await self._send(stream.error_channel, message.encode())

    async def _receive_loop(self) -> None:
        """Client-to-pod: route data frames; frames for other channels are dropped (as wsstream)."""
        ws = self._ws
        while True:
            msg = await ws.receive()
            if msg.type is WSMsgType.BINARY:
                frame: bytes = msg.data
            elif msg.type is WSMsgType.TEXT:
                frame = msg.data.encode()
            else:  # CLOSE / CLOSING / CLOSED / ERROR
                return
            if not frame:
                continue
            channel = frame[0]
            payload = frame[1:]
            if self._base64:
                channel = (channel - ord("0")) & 0xFF
                try:
                    payload = base64.b64decode(payload, validate=True)
                except (binascii.Error, ValueError):
                    log.debug("dropping a frame with invalid base64 on channel %d", channel)
                    continue
            stream = self._by_channel.get(channel)
            if stream is None or not payload:
                continue  # error channels are write-only; unknown channels are ignored
            await stream.dialed.wait()
            writer = stream.writer
            if writer is None or stream.upstream_done.is_set():
                continue  # wsstream: writes to a closed pipe fail and the frame is dropped
            try:
                writer.write(payload)
                await writer.drain()
            except (ConnectionError, RuntimeError):
                stream.upstream_done.set()


async def serve_portforward(
    request: web.Request,
    *,
    pod_name: str,
    pod_uid: str,
    dial: Dial,
    close_linger: float = 1.0,
    on_upgrade: Callable[[], None] | None = None,
) -> web.StreamResponse:
    """Serve GET .../pods/{pod}/portforward once the API server would hand it to the kubelet.

    Checks the `ports` query (API server then kubelet texts), negotiates the subprotocol (403
    with an empty body when none is acceptable), upgrades, sends the port prefix frames, dials
    every port with `dial` and copies both ways with back-pressure until the pod side ends
    (then waits up to `close_linger` seconds, as containerd does) or the client closes.
    A dial raising OSError puts the kubelet's error text on the port's error channel and drops
    the connection without a close frame. `on_upgrade` is called once the 101 is sent.
    """
    ports = _convert_ports(request)
    if isinstance(ports, web.Response):
        return ports
    if not _is_websocket_request(request):
        # The API server answers requests without upgrade headers itself (api.py); one that
        # asks for another upgrade than these gets the same words here.
        return _status_response(400, "BadRequest", "Upgrade request required")
    problem = _kubelet_port_check(ports)
    if problem is not None:
        return problem
    protocol = negotiate_subprotocol(request)
    if protocol is None:
        return web.Response(status=403, body=b"")
    ws = web.WebSocketResponse(
        protocols=(protocol,) if protocol else (),
        compress=False,
        autoping=True,
        max_msg_size=MAX_CLIENT_MESSAGE,
        timeout=CLOSE_HANDSHAKE_TIMEOUT,
    )
    if not protocol:
        # golang.org/x/net/websocket answers the empty protocol with an empty header.
        ws.headers["Sec-WebSocket-Protocol"] = ""
    await ws.prepare(request)
    if on_upgrade is not None:
        on_upgrade()
    session = _Session(
        request,
        ws,
        base64_codec=_CHANNEL_PROTOCOLS[protocol],
        ports=ports,
        pod_name=pod_name,
        pod_uid=pod_uid,
        dial=dial,
        close_linger=close_linger,
    )
    with contextlib.suppress(ConnectionError):  # the client vanished: nothing left to answer
        await session.run()
    return ws
