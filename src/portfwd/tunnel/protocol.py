"""The interface a port-forward wire protocol implements.

The engine and the local listener only ever see a :class:`TunnelStream`: one duplex byte stream
to one pod port. The legacy WebSocket channel protocol (`ws_v4.py`) opens one WebSocket per
stream; a multiplexed protocol (SPDY, or SPDY tunnelled over WebSocket) can implement the same
two methods by opening a stream pair on a shared connection, without touching the engine.
"""

from __future__ import annotations

from typing import Protocol

from portfwd.errors import PortfwdError


class TunnelError(PortfwdError):
    """One stream failed; the message is what the other side said (e.g. the kubelet's text)."""


class TunnelStream(Protocol):
    """A duplex byte stream to one port of one pod.

    `send` awaits until the data is accepted by the transport (back-pressure); `receive`
    returns the next chunk, `b""` at a normal end of stream, and raises :class:`TunnelError`
    when the remote side reported a failure. There is no half-close: `close` ends both
    directions after what was sent is flushed.
    """

    async def send(self, data: bytes) -> None: ...

    async def receive(self) -> bytes: ...

    async def close(self) -> None: ...

    def abort(self) -> None:
        """Drop the stream now, without a closing handshake (shutdown path)."""
        ...

    @property
    def server_closing(self) -> str | None:
        """Why the server ended the stream when its close code says the *server* is going
        away or failing (1001, 1011-1014), e.g. "1012 service restart"; None otherwise. A pod
        ending its connection is normal; an API server restarting is worth a re-check."""
        ...

    @property
    def error(self) -> str | None:
        """The failure text the remote side reported, if any (kept after the stream ends)."""
        ...


class TunnelProtocol(Protocol):
    """Opens streams to pod ports over one cluster connection."""

    name: str

    async def open(self, namespace: str, pod: str, port: int) -> TunnelStream:
        """A new stream to `pod:port`; raises PortfwdError (e.g. ApiError) when refused."""
        ...
