"""A forward's local connections: accepting, waiting for a pod, the tunnel stream, the pump.

Each accepted connection becomes one task owned by :class:`Connections` (cancelled and
awaited by `close_all`). A connection never changes the forward's state itself: what it
learns about the tunnel goes to its owner (`tunnel_failed`), which probes and decides. A
connection's own failure (the backend refused, the pod is gone) is one warning line and
counts in `errors`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Callable
from typing import Protocol, cast

from portfwd.engine.health import describe
from portfwd.engine.httplog import HttpExchange, HttpObserver, ObservedStream
from portfwd.engine.model import ConnectionInfo, ForwardSpec, LogKind, LogLevel
from portfwd.engine.routing import Router
from portfwd.engine.traffic import (
    DENIED,
    INTERNAL,
    IO,
    LOCAL,
    LOST,
    NO_POD,
    REFUSED,
    TUNNEL,
    RateRing,
    Traffic,
)
from portfwd.errors import PortfwdError
from portfwd.kube.errors import ApiError, ClusterUnreachable, Forbidden, Unauthorized
from portfwd.kube.resolve import Resolution
from portfwd.tunnel.listener import LocalConnection
from portfwd.tunnel.pool import PodTunnel
from portfwd.tunnel.protocol import SessionLost, TunnelError, TunnelStream
from portfwd.tunnel.pump import V4_EOF_IDLE_LIMIT, V4_NO_HALF_CLOSE, Lingering, pump
from portfwd.tunnel.replay import Reopen, ReplayStream

log = logging.getLogger(__name__)

CONNECT_WAIT = 10.0  # a connection accepted while reconnecting waits this long for a pod
MAX_WAITING_CONNECTIONS = 256
# A connection the kubelet refused before its pod answered waits this long for the forward to
# move to another pod (the pod was deleted and the watch has not said so yet), then fails.
MOVE_WAIT = 1.0
MAX_HTTP_NOTES = 32  # distinct reasons the HTTP log stopped, said once each per forward


class Owner(Protocol):
    """What connections need from their forward."""

    id: str
    namespace: str
    reason: str
    remote_port: int  # the pod's port, once a pod was resolved (0 before)
    spec: ForwardSpec

    @property
    def accepting(self) -> bool: ...

    @property
    def local_port(self) -> int: ...

    @property
    def faulty(self) -> bool:
        """The tunnel failed and no probe has found it working since."""
        ...

    def add_log(self, level: LogLevel, message: str, kind: LogKind = LogKind.NOTE) -> None: ...

    def log_connection(self, port: int) -> None: ...

    def tunnel_failed(self, exc: BaseException, text: str) -> None: ...

    def demand(self) -> bool:
        """A connection arrived: True when it waits for a tunnel not opened yet (lazy)."""
        ...

    def counters_changed(self) -> None: ...


class Connection:
    """One accepted local connection and its counters (also the pump's meter)."""

    __slots__ = (
        "bytes_in",
        "bytes_out",
        "first_byte",
        "local",
        "opened_at",
        "opened_mono",
        "owner",
        "pod",
        "pod_uid",
        "prepared",
        "rates",
        "stream_open",
        "task",
    )

    def __init__(self, owner: Connections, local: LocalConnection, pod: str) -> None:
        self.owner = owner
        self.local = local
        self.pod = pod
        self.pod_uid = ""  # of the pod its stream goes to, once opened
        self.opened_at = time.time()
        self.opened_mono = time.monotonic()
        self.bytes_in = 0
        self.bytes_out = 0
        self.task: asyncio.Task[None] | None = None
        self.rates: RateRing | None = None  # the rate sampler's, from its first sample
        self.stream_open: float | None = None
        self.first_byte: float | None = None
        self.prepared: Prepared | None = None  # streams opened at accept, until _serve takes them

    def info(self, second: int) -> ConnectionInfo:
        rates = self.rates.rates(second) if self.rates is not None else (0.0, 0.0, 0.0, 0.0)
        return ConnectionInfo(
            self.local.peer,
            self.pod,
            self.opened_at,
            self.bytes_in,
            self.bytes_out,
            *rates,
            self.stream_open,
            self.first_byte,
        )

    def add_in(self, n: int) -> None:
        if self.first_byte is None:
            self.first_byte = time.monotonic() - self.opened_mono
            self.owner.traffic.first_byte.add(self.first_byte)
        self.bytes_in += n
        owner = self.owner
        owner.bytes_in += n
        owner.last_in_at = time.time()
        owner.forward.counters_changed()

    def add_out(self, n: int) -> None:
        self.bytes_out += n
        owner = self.owner
        owner.bytes_out += n
        owner.last_out_at = time.time()
        owner.forward.counters_changed()


class Prepared:
    """A connection's tunnel streams, opened the moment it was accepted, with the route and
    the tunnel they were opened on."""

    __slots__ = ("route", "stream", "took", "tunnel")

    def __init__(
        self, route: Resolution, tunnel: PodTunnel, stream: TunnelStream, took: float
    ) -> None:
        self.route = route
        self.tunnel = tunnel
        self.stream = stream
        self.took = took  # seconds the opening took

    def abort(self) -> None:
        self.stream.abort()


class Connections:
    """The open connections of one forward, and its connection counters."""

    def __init__(
        self,
        forward: Owner,
        router: Router,
        *,
        connect_wait: float = CONNECT_WAIT,
        v4_eof_idle_limit: float = V4_EOF_IDLE_LIMIT,
        max_waiting: int = MAX_WAITING_CONNECTIONS,
        move_wait: float = MOVE_WAIT,
    ) -> None:
        self.forward = forward
        self.router = router
        self.connect_wait = connect_wait
        self.move_wait = move_wait
        self.v4_eof_idle_limit = v4_eof_idle_limit
        self.max_waiting = max_waiting
        self.open: set[Connection] = set()
        self.total = 0
        self.errors = 0
        self.bytes_in = 0  # pod -> local clients
        self.bytes_out = 0
        self.last_in_at: float | None = None  # wall clock of the last byte each way (health)
        self.last_out_at: float | None = None
        self.waiting = 0  # connections waiting for a pod
        self.v4_half_close_said = False
        self.lingering = Lingering()  # v4 connections waiting for a silent pod
        self.http_notes: set[str] = set()  # why the HTTP log stopped, as said so far
        self.traffic = Traffic()  # rates, failures by reason, stream-open and first-byte times

    def __len__(self) -> int:
        return len(self.open)

    def infos(self, second: int) -> list[ConnectionInfo]:
        """As of the rate sampler's `second` (traffic.current_second())."""
        return [c.info(second) for c in sorted(self.open, key=lambda c: c.opened_at)]

    def prepare(self) -> Prepared | None:
        """The listener's `prepare`, the moment a connection is accepted: when the forward
        routes to a pod over a session already open, the connection's streams go on the
        wire now (PodTunnel.open_now), and `accept` serves it with them."""
        router = self.router
        tunnel, route = router.tunnel, router.route
        if tunnel is None or route is None or router.spread or not self.forward.accepting:
            return None
        began = time.monotonic()
        pod = route.pod
        stream = tunnel.open_now(
            self.forward.namespace, pod.name, route.container_port, pod.meta.uid
        )
        if stream is None:
            return None
        return Prepared(route, tunnel, stream, time.monotonic() - began)

    def accept(self, local: LocalConnection) -> None:
        """The listener's callback: serve this connection (or refuse it at once)."""
        fwd = self.forward
        prepared = cast(Prepared | None, local.take_prepared())
        router = self.router
        tunnel = router.tunnel
        coming = fwd.demand()  # a lazy forward wakes: its tunnel is on the way
        waits = not router.routable
        refused = not fwd.accepting or (tunnel is None and not coming)
        if prepared is not None and (
            refused or prepared.route is not router.route or prepared.tunnel is not tunnel
        ):
            # Refused, or the forward moved (another pod, another tunnel) since the accept:
            # the streams are given up, and the connection is served as any other.
            prepared.abort()
            prepared = None
        if refused:
            local.abort()
            return
        port = fwd.local_port
        if waits and self.waiting >= self.max_waiting:
            local.abort()
            self.errors += 1
            self.traffic.failed(LOCAL)
            fwd.add_log(
                LogLevel.WARNING,
                f"refused a connection on {port}: {self.waiting} are already waiting for a pod",
                LogKind.CONNECTION_FAILED,
            )
            fwd.counters_changed()
            return
        route = self.router.route
        spread = bool(self.router.spread)  # the pod is picked when the connection is served
        conn = Connection(self, local, route.pod.name if route and not spread else "")
        conn.prepared = prepared
        self.open.add(conn)
        self.total += 1
        fwd.log_connection(port)
        if waits:
            self.waiting += 1  # counted now: a burst accepted in one loop turn respects the cap
        conn.task = asyncio.create_task(self._serve(conn, tunnel, port, waits))
        fwd.counters_changed()

    async def close_all(self) -> None:
        """Cancel every pump (they abort both sides) and wait for them."""
        tasks = [c.task for c in self.open if c.task is not None]
        for conn in list(self.open):
            conn.local.abort()
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks)
        for conn in list(self.open):  # a task cancelled before it ran: its finally never ran
            self.open.discard(conn)
            if conn.prepared is not None:
                conn.prepared.abort()
                conn.prepared = None

    async def _serve(
        self, conn: Connection, tunnel: PodTunnel | None, local_port: int, counted: bool
    ) -> None:
        fwd = self.forward
        remote = fwd.remote_port
        try:
            # Taken before any await: from here on the pump (or this task's failure) ends it.
            prepared, conn.prepared = conn.prepared, None
            route = prepared.route if prepared else await self._route_for(conn, local_port, counted)
            if route is None:
                return
            if counted or tunnel is None:  # it waited (a reconnect, a lazy wake): today's
                tunnel = self.router.tunnel
            assert tunnel is not None
            stream: TunnelStream | None = None
            for retry in (False, True):
                conn.pod, remote = route.pod.name, route.container_port
                conn.pod_uid = route.pod.meta.uid
                try:
                    began = time.monotonic()
                    if prepared is not None:
                        stream, conn.stream_open = prepared.stream, prepared.took
                        prepared = None  # a retry opens anew
                    else:
                        stream = await tunnel.open(
                            fwd.namespace, conn.pod, remote, route.pod.meta.uid
                        )
                        conn.stream_open = time.monotonic() - began
                    self.traffic.stream_open.add(conn.stream_open)
                    break
                except (ApiError, ClusterUnreachable, SessionLost, OSError) as exc:
                    text = describe(exc)
                    if isinstance(exc, ClusterUnreachable) and exc.cause == "local":
                        # Out of descriptors here: the pod and the tunnel are fine.
                        self._failed(conn, local_port, remote, text, LOCAL)
                        return
                    fwd.tunnel_failed(exc, text)
                    # Nothing reached the pod (the upgrade failed): the client's bytes are
                    # still unsent, so once the forward has a working pod again (another
                    # one, or the same after a successful probe) the connection is retried
                    # there instead of failing.
                    healed = None
                    if not retry and not isinstance(exc, Forbidden | Unauthorized):
                        healed = await self.router.wait_healed(
                            self.connect_wait, lambda: fwd.faulty
                        )
                    if healed is None:
                        why = DENIED if isinstance(exc, Forbidden | Unauthorized) else TUNNEL
                        self._failed(conn, local_port, remote, text, why)
                        return
                    fwd.add_log(
                        LogLevel.INFO,
                        f"retrying a connection on pod {healed.pod.name} ({conn.pod} failed: "
                        f"{text})",
                    )
                    route = healed
            assert stream is not None
            stream = ReplayStream(stream, self._reopener(conn, tunnel), self._mover(conn, tunnel))
            if fwd.spec.http_log:
                stream = ObservedStream(stream, self._http_observer(conn))
            await pump(
                conn.local,
                stream,
                conn,
                warn=self._pump_warning(local_port),
                eof_idle_limit=self.v4_eof_idle_limit,
                lingering=self.lingering,
            )
            closing = stream.server_closing
            if closing is not None:
                text = f"the API server closed a tunnel ({closing}); checking the tunnel"
                fwd.add_log(LogLevel.WARNING, text, LogKind.TUNNEL)
                fwd.tunnel_failed(TunnelError(text), text)
        except SessionLost:
            # Reported once for every connection it ended (the forward's on_lost), not each.
            self.errors += 1
            self.traffic.failed(LOST)
            conn.local.close()
        except PortfwdError as exc:  # TunnelError: the kubelet's text (the backend refused...)
            self._failed(conn, local_port, remote, str(exc), REFUSED)
        except OSError as exc:  # TimeoutError included
            self._failed(conn, local_port, remote, describe(exc), IO)
        except Exception as exc:  # a bug in one connection must not take the forward down
            log.exception("connection of forward %s failed", fwd.id)
            self._failed(conn, local_port, remote, f"internal error: {exc!r}", INTERNAL)
        finally:
            self.open.discard(conn)
            fwd.counters_changed()

    def _http_observer(self, conn: Connection) -> HttpObserver:
        """The request log of one connection: each exchange a line of the forward's log; why
        it stopped (TLS, not HTTP, ...) said once per forward, not once per connection."""
        fwd = self.forward

        def exchange(done: HttpExchange) -> None:
            fwd.add_log(LogLevel.INFO, f"{conn.local.peer} {done.line()}", LogKind.HTTP)

        def stopped(why: str) -> None:
            if why not in self.http_notes and len(self.http_notes) < MAX_HTTP_NOTES:
                self.http_notes.add(why)
                fwd.add_log(LogLevel.INFO, f"HTTP log: {why}", LogKind.HTTP)

        return HttpObserver(exchange, stopped)

    def _reopener(self, conn: Connection, tunnel: PodTunnel) -> Reopen:
        """How a connection whose tunnel died before the pod answered gets a new stream: on
        the pod the forward routes to once a probe found a working tunnel again."""
        fwd = self.forward

        async def reopen(exc: TunnelError) -> TunnelStream | None:
            healed = await self.router.wait_healed(self.connect_wait, lambda: fwd.faulty)
            if healed is None:
                return None
            return await self._retry(conn, tunnel, healed, "the tunnel", exc)

        return reopen

    def _mover(self, conn: Connection, tunnel: PodTunnel) -> Reopen:
        """How a connection the kubelet refused (or the pod ended) before the pod answered
        gets a new stream: only on another pod, once the forward no longer sends new
        connections to this one, within MOVE_WAIT (its pod was deleted and the watch is a
        moment behind the kubelet). A backend that refuses, or a server that closes, on a pod
        the forward keeps using stays as it is."""

        def still_used() -> bool:
            mine = (conn.pod, conn.pod_uid)
            routes = [self.router.route, *self.router.spread]
            return any(r is not None and (r.pod.name, r.pod.meta.uid) == mine for r in routes)

        async def elsewhere(exc: TunnelError) -> TunnelStream | None:
            moved = await self.router.wait_healed(self.move_wait, still_used)
            if moved is None:
                return None
            if self.router.spread:
                moved = self.router.pick(Counter(c.pod for c in self.open if c.pod)) or moved
            return await self._retry(conn, tunnel, moved, f"pod {conn.pod}", exc)

        return elsewhere

    async def _retry(
        self, conn: Connection, tunnel: PodTunnel, route: Resolution, what: str, exc: TunnelError
    ) -> TunnelStream:
        fwd = self.forward
        fwd.add_log(
            LogLevel.INFO,
            f"retrying a connection on pod {route.pod.name} ({what} failed before the pod"
            f" answered: {describe(exc)})",
        )
        conn.pod, conn.pod_uid = route.pod.name, route.pod.meta.uid
        pod = route.pod
        return await tunnel.open(fwd.namespace, pod.name, route.container_port, pod.meta.uid)

    async def _route_for(
        self, conn: Connection, local_port: int, counted: bool
    ) -> Resolution | None:
        """The pod for a new connection; while reconnecting, wait a little for one."""
        try:
            route = await self.router.wait(self.connect_wait)
        finally:
            if counted:
                self.waiting -= 1
        if route is not None and self.router.spread:
            route = self.router.pick(Counter(c.pod for c in self.open if c.pod)) or route
            conn.pod = route.pod.name
        if route is None:
            fwd = self.forward
            why = fwd.reason or "no pod to forward to"
            self._failed(
                conn,
                local_port,
                fwd.remote_port,
                f"no Ready pod within {self.connect_wait:g} s ({why})",
                NO_POD,
            )
        return route

    def _pump_warning(self, local_port: int) -> Callable[[str], None]:
        def warn(text: str) -> None:
            if text.startswith(V4_NO_HALF_CLOSE[:40]):
                if self.v4_half_close_said:
                    return  # said once per forward
                self.v4_half_close_said = True
            self.forward.add_log(LogLevel.WARNING, f"{text} (port {local_port})")

        return warn

    def _failed(
        self, conn: Connection, local_port: int, remote: int, text: str, reason: str
    ) -> None:
        self.errors += 1
        self.traffic.failed(reason)
        conn.local.close()
        # No pod resolved yet (0): the port the user asked for, not a port 0 nobody chose.
        shown = remote or self.forward.spec.remote_port
        self.forward.add_log(
            LogLevel.WARNING,
            f"an error occurred forwarding {local_port} -> {shown}: {text}",
            LogKind.CONNECTION_FAILED,
        )
