"""Port-forward over SPDY: one local connection is a pair of streams on the pod's session.

Per connection the kubelet expects an error stream and a data stream with the same request id
(`tunnel/spdy.py` opens them as kubectl does). The data stream carries the bytes, with a real
half-close: the client's `shutdown(WR)` becomes a FIN and the reply still comes. The error
stream carries the kubelet's verdict ("error forwarding port 5432 to pod ...: connection
refused"), written before it closes the streams, so it is read when the data stream ends.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

from portfwd.kube.client import KubeClient
from portfwd.tunnel.carriers import RawCarrier, WebSocketCarrier
from portfwd.tunnel.protocol import SessionLost, TunnelError
from portfwd.tunnel.spdy import SpdySession, SpdyStream

ERROR_TEXT_MAX = 64 * 1024  # the kubelet's error text is one line; more is cut off
# How long a data stream that ended without a byte waits for the error stream to end: CRI-O
# closes the data stream before the kubelet writes the reason (containerd writes it first).
ERROR_SETTLE = 1.0


class SpdyPortForward:
    """A :class:`~portfwd.tunnel.protocol.TunnelStream` over one (error, data) stream pair."""

    half_close = True

    __slots__ = ("_data", "_error", "_error_text", "_received", "port", "session")

    def __init__(
        self, session: SpdySession, error: SpdyStream, data: SpdyStream, port: int
    ) -> None:
        self.session = session
        self._error = error
        self._data = data
        self.port = port
        self._error_text: str | None = None
        self._received = False

    @property
    def error(self) -> str | None:
        if self._error_text is None and self._error.buffered:
            raw = self._error.take_all()[:ERROR_TEXT_MAX]
            self._error_text = raw.decode("utf-8", "replace").strip() or None
        return self._error_text

    @property
    def server_closing(self) -> str | None:
        return None  # a lost session fails its streams with SessionLost instead

    def commit(self) -> None:
        """Put the streams on the wire (see SpdySession.commit_pair); the first use does it
        too, when nobody did before. Raises SessionLost."""
        self.session.commit_pair(self._error, self._data, self.port)

    async def send(self, data: bytes) -> None:
        try:
            self.commit()
            await self._data.send(data)
        except SessionLost:
            raise
        except TunnelError as exc:
            raise TunnelError(self.error or str(exc)) from None

    async def send_eof(self) -> None:
        with contextlib.suppress(SessionLost):  # the receive side reports it
            self.commit()
            self._data.send_eof()

    async def receive(self) -> bytes:
        try:
            self.commit()
            chunk = await self._data.receive()
        except SessionLost:
            raise
        except TunnelError as exc:  # reset by the kubelet
            if not self._received:
                await self._ended_empty()
            raise TunnelError(self.error or str(exc)) from None
        if chunk:
            self._received = True
            return chunk
        if not self._received:
            await self._ended_empty()
        text = self.error
        if text:
            raise TunnelError(text)
        return b""

    async def _ended_empty(self) -> None:
        """The data stream ended (FIN or reset) before a byte came: find out why.

        The kubelet's reason may still be on its way (CRI-O closes the data stream first):
        wait a moment for the error stream to end. No reason, and the session silent since
        this stream was opened: it may be a dead tunnel that something in front of the
        kubelet keeps open (its kubelet restarted), so make the session prove it is alive.
        A dead one raises SessionLost: the connection never reached a pod and is retried."""
        error = self._error
        if not error.remote_fin and error.failure is None:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(ERROR_SETTLE):
                    await error.ended()
        if self.error:
            return
        session = self.session
        if session.alive and not session.heard_since(self._data.committed_at):
            await asyncio.shield(session.confirm())
        if not session.alive:
            raise SessionLost(session.lost_reason or "the tunnel was lost")

    async def close(self) -> None:
        self.abort()

    def abort(self) -> None:
        """Forget both streams; whichever has not ended both ways is reset (RST_STREAM), so
        the kubelet stops sending for a client that is gone (kubectl resets the data stream
        the same way once the pod's side is done)."""
        self._data.reset()
        self._error.reset()


async def open_session(
    client: KubeClient,
    namespace: str,
    pod: str,
    *,
    over_websocket: bool,
    ping_interval: float,
    on_lost: Callable[[SpdySession], None] | None = None,
    on_idle: Callable[[SpdySession], None] | None = None,
) -> SpdySession:
    """A SPDY port-forward session to `pod`, tunnelled in a WebSocket or plain.

    Raises the upgrade's errors (ApiError subclasses, ClusterUnreachable)."""
    kind = "ws" if over_websocket else "spdy"
    session = SpdySession(
        f"{kind}:{client.context}/{namespace}/{pod}",
        ping_interval=ping_interval,
        on_lost=on_lost,
        on_idle=on_idle,
    )
    if over_websocket:
        ws = await client.open_spdy_websocket(namespace, pod)
        session.attach(WebSocketCarrier(ws, session, session.name))
    else:
        upgraded = await client.open_spdy_upgrade(namespace, pod)
        carrier = RawCarrier(session)
        session.attach(carrier)
        upgraded.attach(carrier)  # the tail (bytes after the 101) reaches the session now
    return session
