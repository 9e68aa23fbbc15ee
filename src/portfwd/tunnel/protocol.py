"""The interface every port-forward wire protocol implements, and its failure contract.

The engine and the local listener only ever see a :class:`TunnelStream`: one duplex byte stream
to one pod port. `v4.channel.k8s.io` (`ws_v4.py`) opens one WebSocket per stream; SPDY
(`spdy.py`, plain or tunnelled in a WebSocket) opens a pair of streams on a session shared by
every connection to the pod.

Failures, in one place:

- opening a stream raises the API client's errors (ApiError subclasses for a refused upgrade:
  403, 404, 5xx ...; ClusterUnreachable when the API server cannot be reached);
- a stream the kubelet failed (its error-stream text, "the backend refused ...") raises
  :class:`TunnelError` from `receive`: a problem of that one connection;
- a lost session (its connection dropped, a ping unanswered, the server going away) fails every
  stream on it with :class:`SessionLost`, a TunnelError: the forward checks the tunnel again
  (a probe) and re-routes, as for a failed upgrade.
"""

from __future__ import annotations

from typing import Protocol

from portfwd.errors import PortfwdError


class TunnelError(PortfwdError):
    """One stream failed; the message is what the other side said (e.g. the kubelet's text)."""


class SessionLost(TunnelError):
    """The connection carrying this stream (and every other one on it) is gone."""


class TunnelStream(Protocol):
    """A duplex byte stream to one port of one pod.

    `send` awaits until the data is accepted (back-pressure); `receive` returns the next chunk,
    `b""` at a normal end of stream, and raises :class:`TunnelError` when the remote side
    reported a failure. With `half_close`, `send_eof` tells the pod that the client is done
    sending while the reply still flows (SPDY's FIN); without it (v4) there is no way to say
    so, and `send_eof` does nothing. `close` ends both directions after what was sent is
    flushed.
    """

    half_close: bool

    async def send(self, data: bytes) -> None: ...

    async def send_eof(self) -> None: ...

    async def receive(self) -> bytes: ...

    async def close(self) -> None: ...

    def abort(self) -> None:
        """Drop the stream now, without a closing handshake (shutdown path)."""
        ...

    @property
    def server_closing(self) -> str | None:
        """Why the server ended the stream when it says the *server* is going away or failing
        (a WebSocket close code 1001, 1011-1014; a SPDY GOAWAY), e.g. "1012 service restart";
        None otherwise. A pod ending its connection is normal; an API server restarting is
        worth a re-check."""
        ...

    @property
    def error(self) -> str | None:
        """The failure text the remote side reported, if any (kept after the stream ends)."""
        ...


class TunnelProtocol(Protocol):
    """Opens streams to pod ports over one cluster connection."""

    @property
    def name(self) -> str:
        """The wire protocol in use, for the log ("SPDY over WebSocket"); "" before the first
        stream or check."""
        ...

    async def open(self, namespace: str, pod: str, port: int, uid: str = "") -> TunnelStream:
        """A new stream to `pod:port`; raises PortfwdError (e.g. ApiError) when refused.

        `uid` tells pods of one name apart (a StatefulSet pod deleted and created again): a
        session to the old one cannot reach the new one."""
        ...

    async def check(self, namespace: str, pod: str, port: int, uid: str = "") -> str:
        """Make sure streams to `pod` can be opened now (RBAC, a live session: a probe before
        a forward goes active); returns the protocol's name. Raises like `open`."""
        ...

    def hold(self, namespace: str, pod: str, uid: str = "") -> None:
        """Keep what serves `pod` ready (a SPDY session stays open) until the next hold or
        release: the forward routes its connections there."""
        ...

    def release(self) -> None:
        """The forward no longer routes anywhere (stopped): ready connections may close."""
        ...
