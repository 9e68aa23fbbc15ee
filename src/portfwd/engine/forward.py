"""One forward: its spec, its state machine, its bounded log, its counters, its connections.

    stopped --start()--> starting --resolved and bound--> active --stop()--> stopped
                             |                               |
                             +--resolve/bind failed--> error  (connection failures: warnings)

A Forward never raises to its owner for expected failures: they become the ERROR state with
the one-line reason, and a log line. Each accepted connection uses the forward's *current*
target (pod, container port), opens one tunnel stream and pumps until either side ends; a
failed connection is a warning in the log (with the kubelet's text) and counts in
`stats.errors`, while the forward stays active.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from portfwd.engine.clients import ClientPool
from portfwd.engine.events import Event, ForwardChanged, LogLine
from portfwd.engine.model import (
    ForwardSnapshot,
    ForwardSpec,
    ForwardState,
    ForwardStats,
    LogEntry,
    LogLevel,
)
from portfwd.errors import PortfwdError
from portfwd.kube.client import KubeClient
from portfwd.kube.resolve import resolve
from portfwd.kube.targets import parse_target
from portfwd.tunnel.addresses import format_host_port, parse_addresses
from portfwd.tunnel.listener import Listeners, LocalConnection, bind
from portfwd.tunnel.protocol import TunnelProtocol
from portfwd.tunnel.pump import pump
from portfwd.tunnel.ws_v4 import WsV4Tunnel

log = logging.getLogger(__name__)

LOG_SIZE = 1000
CONNECTION_LOG_PREFIX = "Handling connection for "  # kubectl's words, one line per connection

TunnelFactory = Callable[[KubeClient], TunnelProtocol]


@dataclass(frozen=True)
class ConnectionInfo:
    """One open connection, as views show it."""

    peer: str  # the local client, e.g. 127.0.0.1:53122
    pod: str
    opened_at: float
    bytes_in: int
    bytes_out: int


class Connection:
    """One accepted local connection and its counters (also the pump's meter)."""

    __slots__ = ("bytes_in", "bytes_out", "forward", "local", "opened_at", "pod", "task")

    def __init__(self, forward: Forward, local: LocalConnection, pod: str) -> None:
        self.forward = forward
        self.local = local
        self.pod = pod
        self.opened_at = time.time()
        self.bytes_in = 0
        self.bytes_out = 0
        self.task: asyncio.Task[None] | None = None

    def info(self) -> ConnectionInfo:
        return ConnectionInfo(
            self.local.peer, self.pod, self.opened_at, self.bytes_in, self.bytes_out
        )

    def add_in(self, n: int) -> None:
        self.bytes_in += n
        fwd = self.forward
        fwd.bytes_in += n
        fwd._changed()

    def add_out(self, n: int) -> None:
        self.bytes_out += n
        fwd = self.forward
        fwd.bytes_out += n
        fwd._changed()


class Forward:
    def __init__(
        self,
        forward_id: str,
        spec: ForwardSpec,
        *,
        clients: ClientPool,
        publish: Callable[[Event], None],
        on_stats: Callable[[str], None],
        tunnel_factory: TunnelFactory = WsV4Tunnel,
        log_size: int = LOG_SIZE,
        preflight: bool = True,
    ) -> None:
        self.id = forward_id
        self.preflight = preflight
        self.spec = spec
        self._clients = clients
        self._publish = publish
        self._on_stats = on_stats
        self._tunnel_factory = tunnel_factory
        self.log: deque[LogEntry] = deque(maxlen=log_size)
        self.state = ForwardState.STOPPED
        self.reason = ""
        self.context = ""
        self.namespace = ""
        self.pod = ""
        self.remote_port = 0
        self.port_name = ""
        self.started_at: float | None = None
        self.bytes_in = 0
        self.bytes_out = 0
        self.errors = 0
        self.connections_total = 0
        self.connections: set[Connection] = set()
        self._listeners: Listeners | None = None
        self._tunnel: TunnelProtocol | None = None

    # -- observation ------------------------------------------------------------------------

    @property
    def active(self) -> bool:
        return self.state is ForwardState.ACTIVE

    @property
    def bound(self) -> tuple[tuple[str, int], ...]:
        return tuple(self._listeners.bound) if self._listeners else ()

    def stats(self) -> ForwardStats:
        return ForwardStats(
            connections_open=len(self.connections),
            connections_total=self.connections_total,
            bytes_in=self.bytes_in,
            bytes_out=self.bytes_out,
            errors=self.errors,
        )

    def snapshot(self) -> ForwardSnapshot:
        return ForwardSnapshot(
            id=self.id,
            spec=self.spec,
            state=self.state,
            context=self.context,
            namespace=self.namespace,
            pod=self.pod,
            remote_port=self.remote_port,
            port_name=self.port_name,
            bound=self.bound,
            reason=self.reason,
            started_at=self.started_at,
            stats=self.stats(),
        )

    def add_log(self, level: LogLevel, message: str) -> None:
        entry = LogEntry(ts=time.time(), level=level, message=message)
        self.log.append(entry)
        self._publish(LogLine(self.id, entry))

    def _set_state(self, state: ForwardState, reason: str = "") -> None:
        self.state = state
        self.reason = reason
        self._publish(ForwardChanged(self.snapshot()))

    def _changed(self) -> None:
        self._on_stats(self.id)

    # -- lifecycle --------------------------------------------------------------------------

    async def start(self) -> None:
        """Resolve, bind, become ACTIVE; or ERROR with the reason. Cancel-safe (stop)."""
        self.started_at = None
        self._set_state(ForwardState.STARTING)
        self.add_log(LogLevel.INFO, f"starting: {self.spec.kubectl_command()}")
        try:
            await self._start()
        except PortfwdError as exc:
            await self._close_listeners()
            self.add_log(LogLevel.ERROR, str(exc))
            self._set_state(ForwardState.ERROR, str(exc))
        except asyncio.CancelledError:
            # stop() during start: nothing stays bound, and the state says so at once.
            await self._close_listeners()
            self.add_log(LogLevel.INFO, "stopped before it was active")
            self._set_state(ForwardState.STOPPED)
            raise
        except Exception as exc:  # a bug: keep the manager alive, show it
            log.exception("forward %s failed to start", self.id)
            await self._close_listeners()
            reason = f"internal error: {type(exc).__name__}: {exc}"
            self.add_log(LogLevel.ERROR, reason)
            self._set_state(ForwardState.ERROR, reason)

    async def _start(self) -> None:
        spec = self.spec
        addresses = parse_addresses(spec.addresses)
        target = parse_target(spec.target)
        client = await self._clients.get(spec.context, spec.kubeconfig)
        self.context = client.context
        self.namespace = spec.namespace or client.namespace
        resolution = await resolve(client, self.namespace, target, spec.remote_port)
        for line in resolution.decisions:
            self.add_log(LogLevel.INFO, line)
        self.pod = resolution.pod.name
        self.remote_port = resolution.container_port
        self.port_name = resolution.port_name
        self._tunnel = self._tunnel_factory(client)
        if self.preflight:
            await self._preflight(self._tunnel)
        self._listeners = await bind(addresses, spec.local_port, self._on_connection)
        for warning in self._listeners.warnings:
            self.add_log(LogLevel.WARNING, warning)
        for host, port in self._listeners.bound:
            where = format_host_port(host, port)
            self.add_log(LogLevel.INFO, f"Forwarding from {where} -> {self.remote_port}")
        self.started_at = time.time()
        self._set_state(ForwardState.ACTIVE)

    async def _preflight(self, tunnel: TunnelProtocol) -> None:
        """Open (and close) one stream before going active.

        A port-forward is authorized per WebSocket upgrade, so without this a user lacking
        `pods/portforward` would see an ACTIVE forward whose every connection fails. The
        kubelet dials the pod port for this stream too; its outcome is not waited for (a
        backend that is not listening yet is a per-connection problem, as with kubectl).
        """
        stream = await tunnel.open(self.namespace, self.pod, self.remote_port)
        await stream.close()

    async def stop(self, reason: str = "") -> None:
        """Close the listeners and every connection. Idempotent."""
        if self.state is ForwardState.STOPPED and not self._listeners and not self.connections:
            return
        await self._close_listeners()
        await self.close_connections()
        if self.state is not ForwardState.STOPPED:
            self.add_log(LogLevel.INFO, "stopped" + (f": {reason}" if reason else ""))
            self._set_state(ForwardState.STOPPED, reason)
        self._changed()

    async def _close_listeners(self) -> None:
        listeners, self._listeners = self._listeners, None
        if listeners is not None:
            await listeners.close()

    async def close_connections(self) -> None:
        """Cancel every pump (they abort both sides) and wait for them."""
        tasks = [c.task for c in self.connections if c.task is not None]
        for conn in list(self.connections):
            conn.local.abort()
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks)

    # -- connections ------------------------------------------------------------------------

    def _on_connection(self, local: LocalConnection) -> None:
        if self.state is not ForwardState.ACTIVE or self._tunnel is None:
            local.abort()
            return
        conn = Connection(self, local, self.pod)
        self.connections.add(conn)
        self.connections_total += 1
        port = self._listeners.port if self._listeners else self.spec.local_port
        self.add_log(LogLevel.INFO, f"{CONNECTION_LOG_PREFIX}{port}")
        conn.task = asyncio.create_task(self._serve(conn, self._tunnel, port))
        self._changed()

    async def _serve(self, conn: Connection, tunnel: TunnelProtocol, local_port: int) -> None:
        remote = self.remote_port
        try:
            stream = await tunnel.open(self.namespace, conn.pod, remote)
            await pump(conn.local, stream, conn)
        except PortfwdError as exc:  # TunnelError (the kubelet's text), ApiError ...
            self._connection_failed(conn, local_port, remote, str(exc))
        except OSError as exc:  # TimeoutError included
            self._connection_failed(conn, local_port, remote, f"{type(exc).__name__}: {exc}")
        except Exception as exc:  # a bug in one connection must not take the forward down
            log.exception("connection of forward %s failed", self.id)
            self._connection_failed(conn, local_port, remote, f"internal error: {exc!r}")
        finally:
            self.connections.discard(conn)
            self._changed()

    def _connection_failed(self, conn: Connection, local_port: int, remote: int, text: str) -> None:
        self.errors += 1
        conn.local.close()
        self.add_log(
            LogLevel.WARNING, f"an error occurred forwarding {local_port} -> {remote}: {text}"
        )

    async def shutdown(self) -> None:
        """Like stop, but without the ceremony: the app is exiting."""
        try:
            await self._close_listeners()
        except Exception:  # a bug: log it, and still close the connections
            log.exception("closing the listeners of forward %s failed", self.id)
        await self.close_connections()
        self.state = ForwardState.STOPPED
