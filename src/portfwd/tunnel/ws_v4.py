"""The legacy WebSocket port-forward protocol, `v4.channel.k8s.io` (docs/protocols.md, section 2).

One WebSocket carries one TCP connection to the pod. Each message is one channel byte and a
payload; with a single requested port, channel 0 carries data and channel 1 carries the
kubelet's error text. Right after the upgrade the kubelet sends the port number (2 bytes,
little-endian) once on each channel: we strip and check it. There is no half-close: a close
of the WebSocket in either direction ends the stream, and any close that was not preceded by
error text is a normal end of stream (the runtime may close 1 s after the backend did, with
code 1000 or 1006).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
from collections.abc import Sequence
from typing import Any, NoReturn, Protocol

import aiohttp

from portfwd.constants import (
    DATA_CHANNEL_OFFSET,
    ERROR_CHANNEL_OFFSET,
    PORT_PREFIX_LEN,
    PORTFORWARD_V4_BINARY,
)
from portfwd.tunnel.protocol import TunnelError, TunnelStream

# How long to wait, once error text arrived, for the rest of it and the close that follows.
ERROR_SETTLE_SECONDS = 1.0
# The kubelet's error text is one line; a server streaming more is cut off here.
ERROR_TEXT_MAX = 64 * 1024

_DATA = bytes([DATA_CHANNEL_OFFSET])


def encode_frame(channel: int, payload: bytes) -> bytes:
    """One binary message: the channel byte, then the payload."""
    return bytes([channel]) + payload


def decode_frame(message: bytes) -> tuple[int, bytes]:
    """(channel, payload) of one binary message; an empty message is channel -1."""
    if not message:
        return -1, b""
    return message[0], message[1:]


def decode_base64_frame(text: str) -> tuple[int, bytes]:
    """(channel, payload) of one `v4.base64.channel.k8s.io` text message."""
    if not text:
        return -1, b""
    channel = ord(text[0]) - ord("0")
    try:
        return channel, base64.b64decode(text[1:], validate=True)
    except (binascii.Error, ValueError) as exc:
        raise TunnelError(f"malformed base64 port-forward frame on channel {channel}") from exc


def port_prefix(port: int) -> bytes:
    """The 2-byte little-endian port number the kubelet sends first on each channel."""
    return port.to_bytes(PORT_PREFIX_LEN, "little")


class _PrefixStripper:
    """Removes the port prefix from the start of one channel, across frame boundaries."""

    __slots__ = ("_expected", "_seen")

    def __init__(self, port: int) -> None:
        self._expected = port_prefix(port)
        self._seen = b""

    @property
    def done(self) -> bool:
        return len(self._seen) >= PORT_PREFIX_LEN

    def feed(self, payload: bytes) -> bytes:
        """The part of `payload` after the prefix; raises if the prefix names another port."""
        need = PORT_PREFIX_LEN - len(self._seen)
        self._seen += payload[:need]
        rest = payload[need:]
        if self.done and self._seen != self._expected:
            got = int.from_bytes(self._seen, "little")
            expected = int.from_bytes(self._expected, "little")
            raise TunnelError(f"port-forward stream announced port {got}, expected {expected}")
        return rest


# Close codes by which a server (the API server or a proxy in front of it) says it is going
# away or failing, as opposed to the pod ending its connection (1000, or 1006 without a frame).
SERVER_CLOSE_CODES = {
    1001: "going away",
    1011: "internal error",
    1012: "service restart",
    1013: "try again later",
    1014: "bad gateway",
}


class WsV4Stream:
    """A :class:`TunnelStream` over one upgraded `v4.channel.k8s.io` WebSocket."""

    half_close = False  # v4 has no way to tell the pod that the client finished sending

    def __init__(self, ws: aiohttp.ClientWebSocketResponse, port: int) -> None:
        self._ws = ws
        self.port = port
        self._data_prefix = _PrefixStripper(port)
        self._error_prefix = _PrefixStripper(port)
        self._error_parts: list[bytes] = []
        self._error_size = 0
        self._ended = False

    @property
    def server_closing(self) -> str | None:
        code = self._ws.close_code
        if code is None or code not in SERVER_CLOSE_CODES:
            return None
        return f"{code} {SERVER_CLOSE_CODES[code]}"

    @property
    def error(self) -> str | None:
        if not self._error_parts:
            return None
        return b"".join(self._error_parts).decode("utf-8", "replace").strip()

    async def send(self, data: bytes) -> None:
        try:
            await self._ws.send_bytes(_DATA + data)
        except (ConnectionError, aiohttp.ClientError, RuntimeError) as exc:
            reason = self.error or f"connection to the pod closed while sending ({exc})"
            raise TunnelError(reason) from exc

    async def send_eof(self) -> None:
        """Nothing to send: v4 cannot half-close (the pump keeps reading instead)."""

    async def receive(self) -> bytes:
        if self._ended:
            return b""
        while True:
            if self._error_parts:
                # Error text arrived: the kubelet closes right after; collect the rest briefly.
                try:
                    async with asyncio.timeout(ERROR_SETTLE_SECONDS):
                        msg = await self._ws.receive()
                except TimeoutError:
                    self._fail()
            else:
                msg = await self._ws.receive()
            kind = msg.type
            if kind is aiohttp.WSMsgType.BINARY:
                channel, payload = decode_frame(msg.data)
            elif kind is aiohttp.WSMsgType.TEXT:
                channel, payload = decode_base64_frame(msg.data)
            elif kind is aiohttp.WSMsgType.ERROR and not self._error_parts:
                self._ended = True
                raise TunnelError(f"port-forward WebSocket failed: {msg.data}")
            else:  # CLOSE, CLOSING, CLOSED (or ERROR after error text)
                self._ended = True
                if self._error_parts:
                    self._fail()
                return b""
            if channel == DATA_CHANNEL_OFFSET:
                if not self._data_prefix.done:
                    payload = self._data_prefix.feed(payload)
                if payload:
                    return payload
            elif channel == ERROR_CHANNEL_OFFSET:
                if not self._error_prefix.done:
                    payload = self._error_prefix.feed(payload)
                if payload:
                    self._error_parts.append(payload[: ERROR_TEXT_MAX - self._error_size])
                    self._error_size += len(payload)
                    if self._error_size >= ERROR_TEXT_MAX:
                        self._fail()
            # Other channels (never requested) are ignored.

    def _fail(self) -> NoReturn:
        self._ended = True
        raise TunnelError(self.error or "port-forward failed")

    async def close(self) -> None:
        if not self._ws.closed:
            # RuntimeError: uvloop's, for a close frame on a transport already closed.
            with contextlib.suppress(
                ConnectionError, aiohttp.ClientError, TimeoutError, RuntimeError
            ):
                async with asyncio.timeout(2.0):
                    await self._ws.close()
        self._ended = True

    def abort(self) -> None:
        self._ended = True
        # aiohttp has no public abort for a client WebSocket: closing its response drops the
        # TCP connection without a closing handshake, which is what shutdown needs.
        response: Any = getattr(self._ws, "_response", None)
        if response is not None:
            response.close()


class PortForwardDialer(Protocol):
    """What WsV4Tunnel needs from a cluster client (KubeClient implements it)."""

    async def open_portforward(
        self, ns: str, pod: str, ports: Sequence[int]
    ) -> aiohttp.ClientWebSocketResponse: ...


V4_NAME = f"{PORTFORWARD_V4_BINARY} (one WebSocket per connection)"


class WsV4Tunnel:
    """Opens one `v4.channel.k8s.io` WebSocket per stream: nothing to keep between streams."""

    name = V4_NAME

    def __init__(self, client: PortForwardDialer) -> None:
        self._client = client

    async def open(self, namespace: str, pod: str, port: int, uid: str = "") -> TunnelStream:
        ws = await self._client.open_portforward(namespace, pod, [port])
        return WsV4Stream(ws, port)

    async def check(self, namespace: str, pod: str, port: int, uid: str = "") -> str:
        """Open (and close) one stream: a port-forward is authorized per upgrade. The kubelet
        dials the pod port for it too; that outcome is not waited for (a backend not
        listening yet is a per-connection problem, as with kubectl)."""
        stream = await self.open(namespace, pod, port)
        await stream.close()
        return self.name

    def hold(self, namespace: str, pod: str, uid: str = "") -> None:
        pass

    def release(self) -> None:
        pass
