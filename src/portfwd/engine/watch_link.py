"""The forward as its health watch (facts.py) sees it: what the watch asks, and what it tells.

The watch reads the tunnel's last ping, the last bytes moved and the credentials' expiry, opens
its probe's streams through the forward's current route, and reports back when its facts or its
verdict changed. Those answers are spread over the forward's parts (router, connections,
client); gathering them here keeps the watch's `Watched` protocol off the forward's own surface.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from portfwd.engine.events import ForwardChanged
from portfwd.engine.model import ForwardState, LogKind, LogLevel
from portfwd.kube.auth import AuthProvider
from portfwd.tunnel.protocol import TunnelError, TunnelStream

if TYPE_CHECKING:
    from portfwd.engine.forward import Forward


class WatchLink:
    """One forward's answers to its HealthWatch (the `Watched` protocol of facts.py)."""

    def __init__(self, fwd: Forward) -> None:
        self._fwd = fwd

    @property
    def serving(self) -> bool:
        return self._fwd.serving

    def add_log(self, level: LogLevel, message: str, kind: LogKind = LogKind.NOTE) -> None:
        self._fwd.add_log(level, message, kind)

    def last_ping(self) -> tuple[float, float] | None:
        last_ping = getattr(self._fwd.router.tunnel, "last_ping", None)  # test tunnels may lack it
        return last_ping() if last_ping is not None else None

    def last_bytes(self) -> tuple[float | None, float | None]:
        conns = self._fwd.connections
        return conns.last_in_at, conns.last_out_at

    def auth(self) -> AuthProvider | None:
        conn = getattr(self._fwd._client, "conn", None)  # test clients may have none
        return getattr(conn, "auth", None)

    async def open_probe_stream(self) -> TunnelStream:
        fwd = self._fwd
        route, tunnel = fwd.router.route, fwd.router.tunnel
        if route is None or tunnel is None:
            raise TunnelError("no pod to probe right now")
        pod = route.pod
        return await tunnel.open(fwd.namespace, pod.name, route.container_port, pod.meta.uid)

    def probe_changed(self, fault: str | None) -> None:
        """The probe's verdict changed: degraded while it fails, active again when it answers
        (the forward's `_set_state` reads the watch's fault)."""
        fwd = self._fwd
        if fwd.serving:
            fwd._set_state(ForwardState.ACTIVE)

    def facts_changed(self) -> None:
        fwd = self._fwd
        fwd._publish(ForwardChanged(fwd.snapshot()))
