"""One forward: its spec, its state machine, its bounded log, its counters, its connections.

    stopped --start()--> starting --resolved, bound--> active <------------+
                             |                           |                 | a Ready pod
                             | permanent failure         | pod gone, not   | (watch event)
                             v                           v Ready, API down |
                           error (unbound)          reconnecting ----------+

A started forward is run by one supervisor task it owns. After the first start it follows
its target through watch caches (`follow.py`): when the pod in use is deleted or turns not
Ready, the next connection goes to another Ready pod at once; when none is left the forward
is RECONNECTING (listener still bound, new connections wait up to CONNECT_WAIT for a pod);
when the target itself is gone it is ERROR but keeps watching for its return. Tunnel
failures (an upgrade refused, the API server unreachable) are probed again on a jittered
backoff. Only failures no retry can fix (bad input, a port in use, 403) end the supervisor;
with `spec.reconnect` off every failure does, as kubectl would.

It follows its kubeconfig too: when the client pool reloads its context (new server, CA or
credentials) it moves its tunnel and watches to the new client and keeps its port; while the
context cannot be loaded it is ERROR with the loader's reason, until the file is fixed.

A Forward never raises to its owner for expected failures: they become a state with the
one-line reason, and a log line of a typed kind (`LogKind`). Its pieces: `health.py` sorts
failures and probes the tunnel, `routing.py` holds where new connections go, and
`connections.py` serves them (a failed connection is a warning line and counts in
`stats.errors`). The supervisor's steps past the first start live beside it and share its
state: `target_follow.py` (the follow loop, outcomes into state), `config_follow.py` (a
reloaded or broken kubeconfig), `doze.py` (a lazy forward's idle steps); `watch_link.py`
answers its health watch (`facts.py`). This module keeps the lifecycle: start, the first
start, stop, the state and the snapshot.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from portfwd.engine.clients import ClientPool, ContextChange
from portfwd.engine.config_follow import ConfigFollow
from portfwd.engine.connections import CONNECT_WAIT, Connections
from portfwd.engine.doze import doze, go_idle, idle_stopped
from portfwd.engine.events import Event, ForwardChanged, LogLine
from portfwd.engine.facts import HealthWatch
from portfwd.engine.health import GiveUp, Retry, TunnelHealth, describe, pod_check, transient
from portfwd.engine.informers import InformerPool
from portfwd.engine.lazy import Idler, watched
from portfwd.engine.logring import LogRing, connection_text
from portfwd.engine.model import (
    ForwardSnapshot,
    ForwardSpec,
    ForwardState,
    ForwardStats,
    LogEntry,
    LogKind,
    LogLevel,
)
from portfwd.engine.present import kubectl_command
from portfwd.engine.routing import Router
from portfwd.engine.target_follow import TargetFollow
from portfwd.engine.traffic import current_second, traffic_stats
from portfwd.engine.watch_link import WatchLink
from portfwd.errors import PortfwdError
from portfwd.kube.backoff import Backoff
from portfwd.kube.client import KubeClient
from portfwd.kube.resolve import Resolution, resolve
from portfwd.kube.targets import Target
from portfwd.tunnel.addresses import BindAddress, format_host_port
from portfwd.tunnel.listener import Listeners, bind
from portfwd.tunnel.pool import PodTunnel, TunnelPool
from portfwd.tunnel.protocol import SessionLost
from portfwd.tunnel.pump import V4_EOF_IDLE_LIMIT

log = logging.getLogger(__name__)

LOG_SIZE = 1000


class Forward:
    def __init__(
        self,
        forward_id: str,
        spec: ForwardSpec,
        *,
        clients: ClientPool,
        publish: Callable[[Event], None],
        on_stats: Callable[[str], None],
        tunnels: TunnelPool,
        informers: InformerPool | None = None,
        log_size: int = LOG_SIZE,
        preflight: bool = True,
        connect_wait: float = CONNECT_WAIT,
        v4_eof_idle_limit: float = V4_EOF_IDLE_LIMIT,
    ) -> None:
        self.id = forward_id
        self.preflight = preflight
        self.spec = spec
        self._clients = clients
        self._informers = informers
        self._publish = self._publisher(publish)
        self._on_stats = on_stats
        self._tunnels = tunnels
        self.log = LogRing(log_size)
        self.state = ForwardState.STOPPED
        self.reason = ""
        self.context = ""
        self.namespace = ""
        self.pod = ""
        self.remote_port = 0
        self.port_name = ""
        self.started_at: float | None = None
        self.reconnects = 0
        self.attempt = 0
        self.next_retry_at: float | None = None
        self.router = Router()
        self.health = TunnelHealth()
        self.connections = Connections(
            self, self.router, connect_wait=connect_wait, v4_eof_idle_limit=v4_eof_idle_limit
        )
        self._listeners: Listeners | None = None
        self._tunnel_name = ""  # the protocol last written to the log
        self._client: KubeClient | None = None
        self._target: Target | None = None
        self._run_task: asyncio.Task[None] | None = None
        self._settled = asyncio.Event()
        self._wake = asyncio.Event()  # something to re-evaluate: a watch event, a fault ...
        self._backoff = Backoff()
        self._retry_at: float | None = None  # loop time of our own next retry
        self._revalidate_reason: str | None = None
        self._been_active = False
        self._last_pod = ""  # the pod used before the route was cleared (for the log)
        self._last_port = 0  # the port bound last time (see _bind)
        self.config_follow = ConfigFollow(self)  # a reloaded or broken kubeconfig
        self.target_follow = TargetFollow(self)  # the follow loop after the first start
        self.watch = HealthWatch(WatchLink(self), spec.probe, spec.probe_interval)  # facts, probe
        self._idler: Idler | None = None  # lazy or idle_stop: when traffic stopped (lazy.py)

    # -- observation ------------------------------------------------------------------------

    @property
    def active(self) -> bool:
        return self.state is ForwardState.ACTIVE

    @property
    def serving(self) -> bool:
        """Active or degraded: bound, routed to a Ready pod through a verified tunnel."""
        return self.state in (ForwardState.ACTIVE, ForwardState.DEGRADED)

    @property
    def wanted(self) -> bool:
        """Started and not stopped: running, reconnecting, or waiting for its target."""
        return self._run_task is not None and not self._run_task.done()

    @property
    def connect_wait(self) -> float:
        """How long a connection accepted while reconnecting waits for a pod."""
        return self.connections.connect_wait

    @connect_wait.setter
    def connect_wait(self, value: float) -> None:
        self.connections.connect_wait = value

    @property
    def bound(self) -> tuple[tuple[str, int], ...]:
        return tuple(self._listeners.bound) if self._listeners else ()

    def stats(self) -> ForwardStats:
        conns = self.connections
        return ForwardStats(
            connections_open=len(conns),
            connections_total=conns.total,
            bytes_in=conns.bytes_in,
            bytes_out=conns.bytes_out,
            errors=conns.errors,
            reconnects=self.reconnects,
            **traffic_stats(conns.traffic, current_second()),
        )

    def sample_rates(self, second: int) -> bool:
        """The rate sampler's second (engine/traffic.py): True when bytes moved."""
        conns = self.connections
        moved, changed = conns.traffic.sample(second, conns.bytes_in, conns.bytes_out, conns.open)
        if changed:
            self.counters_changed()  # the rates changed: the next stats tick carries them
        return moved

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
            attempt=self.attempt,
            next_retry_at=self.next_retry_at,
            tunnel=self._tunnel_name,
            health=self.watch.facts(),
        )

    def _publisher(self, publish: Callable[[Event], None]) -> Callable[[Event], None]:
        """`publish`, telling the health watch which facts went out (it republishes on change)."""

        def publishing(event: Event) -> None:
            if isinstance(event, ForwardChanged):
                self.watch.published(event.snapshot.health)
            publish(event)

        return publishing

    def add_log(self, level: LogLevel, message: str, kind: LogKind = LogKind.NOTE) -> None:
        entry = LogEntry(ts=time.time(), level=level, message=message, kind=kind)
        self.log.append(entry)
        self._publish(LogLine(self.id, entry))

    def log_connection(self, port: int) -> None:
        """kubectl's `Handling connection for PORT` (kept compactly: engine/logring.py)."""
        at = time.time()
        self.log.add_connection(at, port)
        entry = LogEntry(at, LogLevel.INFO, connection_text(port), LogKind.CONNECTION)
        self._publish(LogLine(self.id, entry))

    def _set_state(self, state: ForwardState, reason: str = "") -> None:
        if state is ForwardState.ACTIVE and self.watch.fault is not None:
            state, reason = ForwardState.DEGRADED, self.watch.fault
        self.state = state
        self.reason = reason
        if not self.serving:
            self.started_at = None  # the uptime is the time since it last became active
        if state is not ForwardState.RECONNECTING:
            self.attempt, self.next_retry_at = 0, None
        self._publish(ForwardChanged(self.snapshot()))

    def counters_changed(self) -> None:
        if self._idler is not None:
            self._idler.touch()
        self._on_stats(self.id)

    # -- lifecycle --------------------------------------------------------------------------

    async def start(self) -> None:
        """Start the forward's supervisor; return once it is ACTIVE, RECONNECTING or ERROR.

        The supervisor task belongs to the forward and keeps it alive (follows the target,
        retries) until stop(). Cancelling this call before the first outcome is a stop
        during start: the supervisor is cancelled and the state says STOPPED at once (the
        owner then calls stop() or shutdown() to release what was bound).
        """
        if not self.wanted:
            self._settled = asyncio.Event()
            self.started_at = None
            self.health.reset()
            self._revalidate_reason = None
            self._been_active = False  # a restart is not a reconnect
            self.pod = self._last_pod = ""
            self._backoff.reset()
            self._idler = Idler(self.spec, self.connections.__len__, self._wake.set)
            if not watched(self.spec):
                self._idler = None
            self._set_state(ForwardState.STARTING)
            self.add_log(LogLevel.INFO, f"starting: {kubectl_command(self.spec)}", LogKind.STARTING)
            self._run_task = asyncio.create_task(self._run(), name=f"forward-{self.id}")
            self.watch.restart(self.spec.probe, self.spec.probe_interval)
        try:
            await self._settled.wait()
        except asyncio.CancelledError:
            if self.state is ForwardState.STARTING and self._run_task is not None:
                self._run_task.cancel()
                self.add_log(LogLevel.INFO, "stopped before it was active", LogKind.STOPPED)
                self._set_state(ForwardState.STOPPED)
            raise

    async def _run(self) -> None:
        idler = self._idler
        try:
            if idler is not None:
                idler.start()
            while True:
                if idler is not None and idler.asleep and not await doze(self, idler):
                    return await idle_stopped(self, idler)
                if not await self._first_start():
                    return
                self._settled.set()
                await self.target_follow.run()
                if idler is None or not idler.due:
                    return
                if idler.stop_due:
                    return await idle_stopped(self, idler)
                await go_idle(self, idler)
        except GiveUp as exc:
            await self._give_up(str(exc))
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a bug: keep the manager alive, show it
            log.exception("forward %s failed", self.id)
            await self._give_up(f"internal error: {type(exc).__name__}: {exc}")
        finally:
            if idler is not None:
                await idler.close()
            self._settled.set()

    async def _give_up(self, reason: str) -> None:
        """ERROR with the reason; nothing stays bound or open (the supervisor ends after this)."""
        await self.watch.stop()
        self._clear_route()
        await self.router.close()
        await self._close_listeners()
        await self.connections.close_all()
        self.add_log(LogLevel.ERROR, reason, LogKind.FAILED)
        self._set_state(ForwardState.ERROR, reason)

    async def _first_start(self) -> bool:
        """Bind, resolve, check the tunnel. The local port is bound before the cluster is
        asked anything (a port in use costs one line, not a round trip to the API server),
        except for a bare port name, whose local port is the number it resolves to."""
        spec = self.spec
        addresses = list(spec.bind_addresses)
        fresh = self._listeners is None  # not bound by an earlier doze (lazy)
        if not spec.local_from_remote and fresh:
            try:
                self._listeners = await self._bind(addresses)
            except PortfwdError as exc:
                await self._give_up(str(exc))
                return False
        try:
            client = await self._clients.get(spec.context, spec.kubeconfig)
        except PortfwdError as exc:
            await self._give_up(str(exc))
            return False
        self._target = spec.parsed_target
        self.config_follow.reset()
        self.namespace = self.health.namespace = spec.namespace or client.namespace
        tunnel = self._use_client(client)
        resolution: Resolution | None = None
        waiting = ""
        try:
            resolution = await resolve(client, self.namespace, self._target, spec.remote_port)
            for line in resolution.decisions:
                self.add_log(LogLevel.INFO, line, LogKind.RESOLVED)
            if self.preflight:
                self._note_tunnel(await self.health.check(tunnel, resolution))
        except (PortfwdError, OSError) as exc:
            text = describe(exc)
            if not (spec.reconnect and transient(exc)) or self._listeners is None:
                await self._give_up(text)
                return False
            # Not checked yet: the preflight (403?) must run before this forward is ACTIVE.
            resolution, waiting, self.health.fault = None, text, text
        if self._listeners is None:
            assert resolution is not None
            try:
                self._listeners = await self._bind(addresses, resolution.local_port_default)
            except PortfwdError as exc:
                await self._give_up(str(exc))
                return False
        if fresh:
            shown = resolution.container_port if resolution else spec.remote_port
            self._said_bound(shown)
        if resolution is None:
            await self.target_follow.apply(Retry(waiting))
        else:
            await self.target_follow.apply(pod_check(self._target, resolution))
        return True

    def _said_bound(self, shown: int | str) -> None:
        assert self._listeners is not None
        self.watch.listening()
        for warning in self._listeners.warnings:
            self.add_log(LogLevel.WARNING, warning)
        for host, port in self._listeners.bound:
            where = format_host_port(host, port)
            self.add_log(LogLevel.INFO, f"Forwarding from {where} -> {shown}", LogKind.FORWARDING)

    async def _bind(self, addresses: list[BindAddress], resolved: int = 0) -> Listeners:
        """Bind the spec's port (`resolved`: the number a bare port name resolved to); with
        "any free port" (0), the port this forward had before if it is still free, so a
        restart does not move a forward the user's tools point at."""
        spec = self.spec
        wanted = resolved if spec.local_from_remote else spec.local_port
        if wanted == 0 and self._last_port:
            try:
                return await bind(
                    addresses,
                    self._last_port,
                    self.connections.accept,
                    self._on_pressure,
                    prepare=self.connections.prepare,
                )
            except PortfwdError:
                pass  # taken meanwhile: any free port, as asked
        listeners = await bind(
            addresses,
            wanted,
            self.connections.accept,
            self._on_pressure,
            remote=spec.remote_port,
            prepare=self.connections.prepare,
        )
        self._last_port = listeners.port
        return listeners

    def _use_client(self, client: KubeClient) -> PodTunnel:
        """Talk to the cluster through `client` from now on (at start, and when the
        kubeconfig changed): its tunnel for new connections, and its watches."""
        spec = self.spec
        self._client = client
        self.context = client.context
        tunnel = self._tunnels.tunnel(client, spec.protocol, on_lost=self._session_lost)
        self.router.tunnel = tunnel
        if spec.spread:
            # One holder per spread pod: its session stays open while the pod is in the spread.
            self.router.holder = lambda: self._tunnels.tunnel(client, spec.protocol)
        return tunnel

    def _note_tunnel(self, name: str | None) -> None:
        """Log the wire protocol when it is new or changed (a fallback after a probe)."""
        if name is not None:
            self.watch.verified()
        if name is not None and name != self._tunnel_name:
            self._tunnel_name = name
            self.add_log(LogLevel.INFO, f"tunnel: {name}", LogKind.TUNNEL)

    # -- following the target and the kubeconfig (target_follow.py, config_follow.py) --------

    def context_changed(self, change: ContextChange) -> bool:
        """The client pool reloaded a context: True when it is this forward's (manager.py)."""
        return self.config_follow.changed(change)

    def _clear_route(self) -> None:
        """No pod for new connections; the snapshot stops naming the one that is gone."""
        if self.pod:
            self._last_pod, self.pod = self.pod, ""
        self.router.clear()

    def revalidate(self, reason: str) -> None:
        """Check the target and the tunnel again now (after a sleep, or asked by the user)."""
        if self.wanted:
            self._revalidate_reason = reason
            self._backoff.reset()
            self._wake.set()

    def wake(self) -> None:
        """Re-evaluate now (the spec's reconnect flag changed)."""
        self._wake.set()

    # -- stopping ---------------------------------------------------------------------------

    async def _cancel_run(self) -> None:
        await self.watch.stop()
        task, self._run_task = self._run_task, None
        if task is not None and not task.done():
            task.cancel()
            await asyncio.wait({task})

    async def stop(self, reason: str = "") -> None:
        """Close the listeners and every connection. Idempotent."""
        if (
            self.state is ForwardState.STOPPED
            and self._run_task is None
            and not self._listeners
            and not self.connections
        ):
            return
        was = self.state
        await self._cancel_run()
        self._clear_route()
        await self.router.close()
        await self._close_listeners()
        await self.connections.close_all()
        if self.state is not ForwardState.STOPPED:
            if was is ForwardState.STARTING:
                self.add_log(LogLevel.INFO, "stopped before it was active", LogKind.STOPPED)
            else:
                text = "stopped" + (f": {reason}" if reason else "")
                self.add_log(LogLevel.INFO, text, LogKind.STOPPED)
            self._set_state(ForwardState.STOPPED, reason)
        self.counters_changed()

    async def _close_listeners(self) -> None:
        listeners, self._listeners = self._listeners, None
        if listeners is not None:
            await listeners.close()

    async def shutdown(self) -> None:
        """Like stop, but without the ceremony: the app is exiting."""
        try:
            await self._cancel_run()
            await self._close_listeners()
        except Exception:  # a bug: log it, and still close the connections
            log.exception("closing the listeners of forward %s failed", self.id)
        await self.connections.close_all()
        self.router.clear()
        await self.router.close()
        self.state = ForwardState.STOPPED

    # -- what connections report ------------------------------------------------------------

    @property
    def accepting(self) -> bool:
        return self.wanted

    def demand(self) -> bool:
        """A connection was accepted: True when it should wait for a tunnel this forward
        does not have yet (a lazy one, woken by it)."""
        return self._idler.demand() if self._idler is not None else False

    @property
    def local_port(self) -> int:
        return self._listeners.port if self._listeners else self.spec.local_port

    @property
    def faulty(self) -> bool:
        return self.health.fault is not None

    def _on_pressure(self, message: str | None) -> None:
        """Accepting paused (out of file descriptors) or resumed: once per episode each. The
        forward's state does not change: its pod and tunnel are fine."""
        self.connections.lingering.pressure = message is not None
        if message is not None:
            self.add_log(LogLevel.WARNING, message, LogKind.PRESSURE)
            if shed := self.connections.lingering.shed():
                self.add_log(
                    LogLevel.INFO,
                    f"closed {shed} v4 connection(s) that waited for a silent pod after their"
                    " client's end, to free their descriptors",
                    LogKind.PRESSURE,
                )
        else:
            self.add_log(LogLevel.INFO, "accepting connections normally again", LogKind.PRESSURE)

    def _session_lost(self, reason: str) -> None:
        """The SPDY session to the pod this forward routes to was lost: check the tunnel."""
        if not self.wanted:
            return
        open_now = len(self.connections)
        ended = f"; {open_now} open connection(s) ended" if open_now else ""
        text = f"lost the tunnel to pod {self.pod or self._last_pod}: {reason}{ended}"
        self.add_log(LogLevel.WARNING, f"{text}; checking the tunnel", LogKind.TUNNEL)
        self.tunnel_failed(SessionLost(reason), text)

    def tunnel_failed(self, exc: BaseException, text: str) -> None:
        """A port-forward could not be opened: the tunnel, not the pod's backend, failed."""
        self.health.failed(exc, text)
        self._wake.set()
