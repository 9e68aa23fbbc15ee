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

A Forward never raises to its owner for expected failures: they become a state with the
one-line reason, and a log line. A failed connection is a warning in the log (with the
kubelet's text) and counts in `stats.errors`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from portfwd.engine.backoff import Backoff
from portfwd.engine.clients import ClientPool
from portfwd.engine.events import Event, ForwardChanged, LogLine
from portfwd.engine.follow import Follower, Gone, Outcome, Ready, Syncing, Unwatched, Waiting
from portfwd.engine.informers import InformerPool
from portfwd.engine.model import (
    ConnectionInfo,
    ForwardSnapshot,
    ForwardSpec,
    ForwardState,
    ForwardStats,
    LogEntry,
    LogLevel,
)
from portfwd.errors import NoReadyPod, PortfwdError
from portfwd.kube.client import KubeClient
from portfwd.kube.errors import ApiError, ClusterUnreachable, Forbidden, Unauthorized
from portfwd.kube.resolve import Resolution, resolve
from portfwd.kube.targets import Target, parse_target
from portfwd.tunnel.addresses import BindAddress, format_host_port, parse_addresses
from portfwd.tunnel.listener import Listeners, LocalConnection, bind
from portfwd.tunnel.pool import PodTunnel, TunnelPool
from portfwd.tunnel.protocol import SessionLost, TunnelError, TunnelStream
from portfwd.tunnel.pump import V4_EOF_IDLE_LIMIT, pump

log = logging.getLogger(__name__)

LOG_SIZE = 1000
CONNECT_WAIT = 10.0  # a connection accepted while reconnecting waits this long for a pod
MAX_WAITING_CONNECTIONS = 256
TRANSIENT_CAUSES = frozenset(
    {"refused", "timeout", "lost", "dns", "local"}
)  # beyond this, connections arriving while reconnecting are refused
CONNECTION_LOG_PREFIX = "Handling connection for "  # kubectl's words, one line per connection


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


@dataclass(frozen=True)
class _Retry:
    """A failure the forward retries on its own backoff timer (not a watch's)."""

    reason: str
    usable: Resolution | None = None


class _GiveUp(Exception):
    """A failure no retry can fix (403, bad input): the forward goes to ERROR, unbound."""


def _transient(exc: BaseException) -> bool:
    """May this failure heal by itself (so a reconnecting forward retries it)?"""
    if isinstance(exc, ClusterUnreachable):
        return exc.cause in TRANSIENT_CAUSES  # a bad CA or proxy will not heal by itself
    if isinstance(exc, NoReadyPod | TunnelError | OSError):
        return True
    if isinstance(exc, ApiError) and not isinstance(exc, Forbidden | Unauthorized):
        return exc.status >= 500 or exc.status in (404, 409, 429)
    return False


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
        self.v4_eof_idle_limit = v4_eof_idle_limit
        self.preflight = preflight
        self.spec = spec
        self.connect_wait = connect_wait
        self._clients = clients
        self._informers = informers
        self._publish = publish
        self._on_stats = on_stats
        self._tunnels = tunnels
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
        self.reconnects = 0
        self.attempt = 0
        self.next_retry_at: float | None = None
        self.connections: set[Connection] = set()
        self._listeners: Listeners | None = None
        self._tunnel: PodTunnel | None = None
        self._tunnel_name = ""  # the protocol last written to the log
        self._client: KubeClient | None = None
        self._target: Target | None = None
        self._run_task: asyncio.Task[None] | None = None
        self._settled = asyncio.Event()
        self._wake = asyncio.Event()  # something to re-evaluate: a watch event, a fault ...
        self._routable = asyncio.Event()  # set while connections have a pod to go to
        self._route_changed = asyncio.Event()  # set (and replaced) whenever a route is taken
        self._route: Resolution | None = None
        self._follower: Follower | None = None
        self._backoff = Backoff()
        self._retry_at: float | None = None  # loop time of our own next retry
        self._fault: str | None = None  # a tunnel failure to check with a probe
        self._fault_pod: str | None = None  # the pod that failed (probe it on the timer only)
        self._fatal: str | None = None  # a connection saw a failure no retry fixes (403)
        self._revalidate_reason: str | None = None
        self._waiting = 0  # connections waiting for a pod
        self._been_active = False
        self._last_port = 0  # the port bound last time (see _bind)

    # -- observation ------------------------------------------------------------------------

    @property
    def active(self) -> bool:
        return self.state is ForwardState.ACTIVE

    @property
    def wanted(self) -> bool:
        """Started and not stopped: running, reconnecting, or waiting for its target."""
        return self._run_task is not None and not self._run_task.done()

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
            reconnects=self.reconnects,
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
            attempt=self.attempt,
            next_retry_at=self.next_retry_at,
        )

    def add_log(self, level: LogLevel, message: str) -> None:
        entry = LogEntry(ts=time.time(), level=level, message=message)
        self.log.append(entry)
        self._publish(LogLine(self.id, entry))

    def _set_state(self, state: ForwardState, reason: str = "") -> None:
        self.state = state
        self.reason = reason
        if state is not ForwardState.RECONNECTING:
            self.attempt, self.next_retry_at = 0, None
        self._publish(ForwardChanged(self.snapshot()))

    def _changed(self) -> None:
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
            self._fault = self._fatal = self._revalidate_reason = self._fault_pod = None
            self._been_active = False  # a restart is not a reconnect
            self.pod = ""
            self._backoff.reset()
            self._set_state(ForwardState.STARTING)
            self.add_log(LogLevel.INFO, f"starting: {self.spec.kubectl_command()}")
            self._run_task = asyncio.create_task(self._run(), name=f"forward-{self.id}")
        try:
            await self._settled.wait()
        except asyncio.CancelledError:
            if self.state is ForwardState.STARTING and self._run_task is not None:
                self._run_task.cancel()
                self.add_log(LogLevel.INFO, "stopped before it was active")
                self._set_state(ForwardState.STOPPED)
            raise

    async def _run(self) -> None:
        try:
            if await self._first_start():
                self._settled.set()
                await self._follow()
        except _GiveUp as exc:
            await self._give_up(str(exc))
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a bug: keep the manager alive, show it
            log.exception("forward %s failed", self.id)
            await self._give_up(f"internal error: {type(exc).__name__}: {exc}")
        finally:
            self._settled.set()

    async def _give_up(self, reason: str) -> None:
        """ERROR with the reason; nothing stays bound or open (the supervisor ends after this)."""
        self._clear_route()
        await self._close_listeners()
        await self.close_connections()
        self.add_log(LogLevel.ERROR, reason)
        self._set_state(ForwardState.ERROR, reason)

    async def _first_start(self) -> bool:
        spec = self.spec
        try:
            addresses = parse_addresses(spec.addresses)
            target = parse_target(spec.target)
            client = await self._clients.get(spec.context, spec.kubeconfig)
        except PortfwdError as exc:
            await self._give_up(str(exc))
            return False
        self._client, self._target = client, target
        self.context = client.context
        self.namespace = spec.namespace or client.namespace
        self._tunnel = self._tunnels.tunnel(client, spec.protocol, on_lost=self._session_lost)
        resolution: Resolution | None = None
        waiting = ""
        try:
            resolution = await resolve(client, self.namespace, target, spec.remote_port)
            for line in resolution.decisions:
                self.add_log(LogLevel.INFO, line)
            if self.preflight:
                await self._preflight(self._tunnel, resolution)
        except (PortfwdError, OSError) as exc:
            text = str(exc) if isinstance(exc, PortfwdError) else f"{type(exc).__name__}: {exc}"
            if not (spec.reconnect and _transient(exc)):
                await self._give_up(text)
                return False
            # Not checked yet: the preflight (403?) must run before this forward is ACTIVE.
            resolution, waiting, self._fault = None, text, text
        try:
            self._listeners = await self._bind(addresses)
        except PortfwdError as exc:
            await self._give_up(str(exc))
            return False
        for warning in self._listeners.warnings:
            self.add_log(LogLevel.WARNING, warning)
        shown = resolution.container_port if resolution else spec.remote_port
        for host, port in self._listeners.bound:
            where = format_host_port(host, port)
            self.add_log(LogLevel.INFO, f"Forwarding from {where} -> {shown}")
        if resolution is None:
            await self._apply(_Retry(waiting))
        else:
            await self._apply(self._pod_check(resolution))
        return True

    async def _bind(self, addresses: list[BindAddress]) -> Listeners:
        """Bind the spec's port; with "any free port" (0), the port this forward had before
        if it is still free, so a restart does not move a forward the user's tools point at."""
        spec = self.spec
        if spec.local_port == 0 and self._last_port:
            try:
                return await bind(
                    addresses, self._last_port, self._on_connection, self._on_pressure
                )
            except PortfwdError:
                pass  # taken meanwhile: any free port, as asked
        listeners = await bind(addresses, spec.local_port, self._on_connection, self._on_pressure)
        self._last_port = listeners.port
        return listeners

    def _pod_check(self, resolution: Resolution) -> Ready | Waiting:
        """A `pod/NAME` target is usable while Running but only *active* while Ready."""
        pod = resolution.pod
        if self._target is not None and self._target.kind == "pod":
            if pod.terminating:
                return Waiting(f"pod {pod.name} is terminating", usable=resolution)
            if not pod.ready:
                why = pod.not_ready_reason()
                return Waiting(
                    f"pod {pod.name} is Running but not Ready ({why})", usable=resolution
                )
        return Ready(resolution)

    async def _preflight(self, tunnel: PodTunnel, resolution: Resolution) -> None:
        """Check the tunnel to the chosen pod before going active.

        A port-forward is authorized per upgrade, so without this a user lacking
        `pods/portforward` would see an ACTIVE forward whose every connection fails. For SPDY
        this opens (or pings) the pod's session, which new connections then use at once.
        """
        pod = resolution.pod
        name = await tunnel.check(self.namespace, pod.name, resolution.container_port, pod.meta.uid)
        if name != self._tunnel_name:
            self._tunnel_name = name
            self.add_log(LogLevel.INFO, f"tunnel: {name}")

    # -- following the target -----------------------------------------------------------------

    async def _follow(self) -> None:
        """React to watch events, tunnel faults and retry timers until stopped or given up."""
        assert self._client is not None and self._target is not None
        follower: Follower | None = None
        if self._informers is not None:
            follower = Follower(
                self._informers,
                self._client,
                self.namespace,
                self._target,
                self.spec.remote_port,
                self._wake,
            )
            follower.start()
        self._follower = follower
        loop = asyncio.get_running_loop()
        try:
            while True:
                fired = False
                if self._retry_at is None:
                    await self._wake.wait()
                else:
                    try:
                        async with asyncio.timeout_at(self._retry_at):
                            await self._wake.wait()
                    except TimeoutError:
                        fired = True
                self._wake.clear()
                if fired or (self._retry_at is not None and loop.time() >= self._retry_at):
                    fired, self._retry_at = True, None
                if self._fatal is not None:
                    raise _GiveUp(self._fatal)
                if not self.spec.reconnect and (
                    self.state is ForwardState.ERROR
                    or (self.state is ForwardState.RECONNECTING and self._route is None)
                ):
                    raise _GiveUp(self.reason or "auto-reconnect is off")
                if self._revalidate_reason is not None:
                    self.add_log(LogLevel.INFO, f"re-validating: {self._revalidate_reason}")
                    self._revalidate_reason = None
                    self._fault = self._fault or "re-validating"  # probe the tunnel too
                outcome = await self._evaluate(fired)
                if outcome is not None and not await self._apply(outcome):
                    return
        finally:
            self._follower = None
            if follower is not None:
                follower.close()

    async def _evaluate(self, fired: bool) -> Outcome | _Retry | None:
        follower = self._follower
        if follower is not None:
            outcome = follower.evaluate(self.pod or None)
            if isinstance(outcome, Unwatched):
                self.add_log(
                    LogLevel.WARNING,
                    f"{outcome.reason}; following the target only when connections fail",
                )
                follower.close()
                self._follower = None
                return await self._evaluate(True)
            if isinstance(outcome, Syncing):
                return None  # no opinion until the caches are filled
            if isinstance(outcome, Ready) and (self._fault is not None or fired):
                same_pod = outcome.resolution.pod.name == self._fault_pod
                if not fired and self._retry_at is not None and same_pod:
                    return None  # the backoff timer decides when to probe this pod again
                return await self._probe_each(follower, outcome.resolution)
            return outcome
        # Without a watch: ask the API, but only when something suggests a change.
        if not fired and self._fault is None:
            return None
        assert self._client is not None and self._target is not None
        try:
            resolution = await resolve(
                self._client, self.namespace, self._target, self.spec.remote_port
            )
        except (Forbidden, Unauthorized) as exc:
            raise _GiveUp(str(exc)) from None
        except NoReadyPod as exc:
            return _Retry(str(exc))
        except PortfwdError as exc:
            if _transient(exc):
                return _Retry(str(exc))
            return Gone(str(exc))
        checked = self._pod_check(resolution)
        if isinstance(checked, Ready):
            return await self._probe(resolution)
        return checked

    async def _probe_each(self, follower: Follower, first: Resolution) -> Ready | _Retry:
        """Probe the chosen pod, then each other Ready pod in turn while the probes fail.

        The API may call a pod Ready whose node's kubelet is unreachable (the node
        controller needs ~40 s to notice): a tunnel to it fails while another pod serves.
        Each pod is probed at most once per attempt; when all fail, the backoff timer
        retries them all.
        """
        avoid: set[str] = set()
        result = await self._probe(first)
        while isinstance(result, _Retry) and self._fault_pod is not None:
            avoid.add(self._fault_pod)
            other = follower.evaluate(None, avoid)
            if not isinstance(other, Ready) or other.resolution.pod.name in avoid:
                break  # no other pod (a pod target has only one): the timer retries
            self.add_log(
                LogLevel.WARNING,
                f"pod {self._fault_pod} cannot be reached ({result.reason}); "
                f"trying pod {other.resolution.pod.name}",
            )
            result = await self._probe(other.resolution)
        return result

    async def _probe(self, resolution: Resolution) -> Ready | _Retry:
        """After a tunnel failure: does a port-forward to the chosen pod work again?"""
        if self._fault is None or self._tunnel is None:
            return Ready(resolution)
        try:
            await self._preflight(self._tunnel, resolution)
        except (Forbidden, Unauthorized) as exc:
            raise _GiveUp(str(exc)) from None
        except PortfwdError as exc:
            self._fault_pod = resolution.pod.name
            return _Retry(str(exc))
        except OSError as exc:
            self._fault_pod = resolution.pod.name
            return _Retry(f"{type(exc).__name__}: {exc}")
        self._fault = self._fault_pod = None
        return Ready(resolution)

    async def _apply(self, outcome: Outcome | _Retry) -> bool:
        """Turn an outcome into state; False when the forward gave up (reconnect off)."""
        if isinstance(outcome, Ready):
            moved = self.pod and outcome.resolution.pod.name != self.pod
            if not self.spec.reconnect and self._been_active and moved:
                # kubectl's way: a forward is bound to the pod it started with.
                await self._give_up(
                    f"lost pod {self.pod} (deleted or no longer Ready); auto-reconnect is off"
                )
                return False
            self._become_active(outcome.resolution)
            return True
        if isinstance(outcome, Gone):
            if not self.spec.reconnect:
                await self._give_up(outcome.reason)
                return False
            self._clear_route()
            self._retry_at = None
            if self.state is not ForwardState.ERROR or self.reason != outcome.reason:
                # A warning, not an error line: the forward still waits (front ends print
                # ERROR lines as final failures).
                self.add_log(LogLevel.WARNING, outcome.reason)
                self._set_state(ForwardState.ERROR, outcome.reason)
            return True
        if not isinstance(outcome, _Retry | Waiting):
            return True
        if not self.spec.reconnect and outcome.usable is None:
            await self._give_up(outcome.reason)
            return False
        if outcome.usable is not None:
            self._use(outcome.usable)
        else:
            self._clear_route()
        loop = asyncio.get_running_loop()
        next_at: float | None
        if isinstance(outcome, _Retry):
            delay = self._backoff.failure()
            self._retry_at = loop.time() + delay
            attempt, next_at = self._backoff.attempt, time.time() + delay
        else:
            self._retry_at = None if self._fault is None else self._retry_at
            attempt, next_at = outcome.attempt, outcome.next_retry_at
        # One log line per new episode or retry; a reason that only changes its details
        # (pod counts while a rollout goes on) updates the state silently.
        changed = self.state is not ForwardState.RECONNECTING or self.attempt != attempt
        retry_moved = self.next_retry_at != next_at
        self.attempt, self.next_retry_at = attempt, next_at
        if changed:
            if next_at is not None:
                when = max(0.0, next_at - time.time())
                self.add_log(
                    LogLevel.WARNING,
                    f"reconnecting (attempt {attempt}, next try in {when:.1f} s): {outcome.reason}",
                )
            else:
                self.add_log(LogLevel.WARNING, f"waiting: {outcome.reason}")
        if changed or retry_moved or self.reason != outcome.reason:
            self.state, self.reason = ForwardState.RECONNECTING, outcome.reason
            self._publish(ForwardChanged(self.snapshot()))
        return True

    def _become_active(self, resolution: Resolution) -> None:
        old, was = self.pod, self.state
        moved = old != resolution.pod.name or self.remote_port != resolution.container_port
        self._fault = self._fault_pod = None  # before _use: it wakes connections waiting
        self._use(resolution)  # for a healed route
        self._retry_at = None
        self._backoff.success()
        if was is ForwardState.ACTIVE and not moved:
            return
        if self._been_active:
            self.reconnects += 1
            if moved and old:
                self.add_log(
                    LogLevel.INFO,
                    f"switched to pod {resolution.pod.name} port {resolution.container_port}"
                    f" (was {old})",
                )
            else:
                self.add_log(
                    LogLevel.INFO,
                    f"active again: pod {resolution.pod.name} port {resolution.container_port}",
                )
        self._been_active = True
        if was is not ForwardState.ACTIVE or self.started_at is None:
            self.started_at = time.time()
        self._set_state(ForwardState.ACTIVE)

    def _use(self, resolution: Resolution) -> None:
        if self._tunnel is not None:
            self._tunnel.hold(self.namespace, resolution.pod.name, resolution.pod.meta.uid)
        self._route = resolution
        changed, self._route_changed = self._route_changed, asyncio.Event()
        changed.set()  # wakes connections waiting for a working pod after a tunnel failure
        self.pod = resolution.pod.name
        self.remote_port = resolution.container_port
        self.port_name = resolution.port_name
        self._routable.set()

    def _clear_route(self) -> None:
        self._route = None
        self._routable.clear()
        if self._tunnel is not None:
            self._tunnel.release()

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
        await self._close_listeners()
        await self.close_connections()
        if self.state is not ForwardState.STOPPED:
            if was is ForwardState.STARTING:
                self.add_log(LogLevel.INFO, "stopped before it was active")
            else:
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

    async def shutdown(self) -> None:
        """Like stop, but without the ceremony: the app is exiting."""
        try:
            await self._cancel_run()
            await self._close_listeners()
        except Exception:  # a bug: log it, and still close the connections
            log.exception("closing the listeners of forward %s failed", self.id)
        await self.close_connections()
        if self._tunnel is not None:
            self._tunnel.release()
        self.state = ForwardState.STOPPED

    # -- connections ------------------------------------------------------------------------

    def _on_connection(self, local: LocalConnection) -> None:
        if not self.wanted or self._tunnel is None:
            local.abort()
            return
        port = self._listeners.port if self._listeners else self.spec.local_port
        waits = not self._routable.is_set()
        if waits and self._waiting >= MAX_WAITING_CONNECTIONS:
            local.abort()
            self.errors += 1
            self.add_log(
                LogLevel.WARNING,
                f"refused a connection on {port}: {self._waiting} are already waiting for a pod",
            )
            self._changed()
            return
        conn = Connection(self, local, self.pod)
        self.connections.add(conn)
        self.connections_total += 1
        self.add_log(LogLevel.INFO, f"{CONNECTION_LOG_PREFIX}{port}")
        if waits:
            self._waiting += 1  # counted now: a burst accepted in one loop turn respects the cap
        conn.task = asyncio.create_task(self._serve(conn, self._tunnel, port, waits))
        self._changed()

    async def _serve(
        self, conn: Connection, tunnel: PodTunnel, local_port: int, counted: bool
    ) -> None:
        remote = self.remote_port
        try:
            route = await self._wait_for_route(conn, local_port, counted)
            if route is None:
                return
            stream: TunnelStream | None = None
            for retry in (False, True):
                conn.pod, remote = route.pod.name, route.container_port
                try:
                    stream = await tunnel.open(self.namespace, conn.pod, remote, route.pod.meta.uid)
                    break
                except (ApiError, ClusterUnreachable, SessionLost, OSError) as exc:
                    text = (
                        f"{exc}"
                        if isinstance(exc, PortfwdError)
                        else f"{type(exc).__name__}: {exc}"
                    )
                    if isinstance(exc, ClusterUnreachable) and exc.cause == "local":
                        # Out of descriptors here: the pod and the tunnel are fine.
                        self._connection_failed(conn, local_port, remote, text)
                        return
                    self._tunnel_failed(exc, text)
                    # Nothing reached the pod (the upgrade failed): the client's bytes are
                    # still unsent, so once the forward has a working pod again (another
                    # one, or the same after a successful probe) the connection is retried
                    # there instead of failing.
                    healed = None
                    if not retry and not isinstance(exc, Forbidden | Unauthorized):
                        healed = await self._wait_for_healed_route()
                    if healed is None:
                        self._connection_failed(conn, local_port, remote, text)
                        return
                    self.add_log(
                        LogLevel.INFO,
                        f"retrying a connection on pod {healed.pod.name} ({conn.pod} failed: "
                        f"{text})",
                    )
                    route = healed
            assert stream is not None
            await pump(
                conn.local,
                stream,
                conn,
                warn=self._pump_warning(local_port),
                eof_idle_limit=self.v4_eof_idle_limit,
            )
            closing = stream.server_closing
            if closing is not None:
                text = f"the API server closed a tunnel ({closing}); checking the tunnel"
                self.add_log(LogLevel.WARNING, text)
                self._tunnel_failed(TunnelError(text), text)
        except SessionLost:
            # Reported once for every connection it ended (_session_lost), not once each.
            self.errors += 1
            conn.local.close()
        except PortfwdError as exc:  # TunnelError: the kubelet's text (the backend refused...)
            self._connection_failed(conn, local_port, remote, str(exc))
        except OSError as exc:  # TimeoutError included
            self._connection_failed(conn, local_port, remote, f"{type(exc).__name__}: {exc}")
        except Exception as exc:  # a bug in one connection must not take the forward down
            log.exception("connection of forward %s failed", self.id)
            self._connection_failed(conn, local_port, remote, f"internal error: {exc!r}")
        finally:
            self.connections.discard(conn)
            self._changed()

    async def _wait_for_healed_route(self) -> Resolution | None:
        """After a tunnel failure: the route once the forward found a working pod again
        (its fault cleared by a successful probe), or None after `connect_wait`."""
        try:
            async with asyncio.timeout(self.connect_wait):
                while self._route is None or self._fault is not None:
                    await self._route_changed.wait()
        except TimeoutError:
            return None
        return self._route

    async def _wait_for_route(
        self, conn: Connection, local_port: int, counted: bool
    ) -> Resolution | None:
        """The pod for a new connection; while reconnecting, wait a little for one.

        The route may be set and cleared again before this task runs (a probe succeeded,
        then the pod went away), so it loops until a route holds, within one deadline.
        """
        try:
            if self._route is not None:
                return self._route
            try:
                async with asyncio.timeout(self.connect_wait):
                    while self._route is None:  # the event is set exactly while a route is
                        await self._routable.wait()
            except TimeoutError:
                why = self.reason or "no pod to forward to"
                self._connection_failed(
                    conn,
                    local_port,
                    self.remote_port,
                    f"no Ready pod within {self.connect_wait:g} s ({why})",
                )
                return None
            return self._route
        finally:
            if counted:
                self._waiting -= 1

    def _on_pressure(self, message: str | None) -> None:
        """Accepting paused (out of file descriptors) or resumed: once per episode each. The
        forward's state does not change: its pod and tunnel are fine."""
        if message is not None:
            self.add_log(LogLevel.WARNING, message)
        else:
            self.add_log(LogLevel.INFO, "accepting connections normally again")

    def _pump_warning(self, local_port: int) -> Callable[[str], None]:
        def warn(text: str) -> None:
            self.add_log(LogLevel.WARNING, f"{text} (port {local_port})")

        return warn

    def _session_lost(self, reason: str) -> None:
        """The SPDY session to the pod this forward routes to was lost: check the tunnel."""
        if not self.wanted:
            return
        open_now = len(self.connections)
        ended = f"; {open_now} open connection(s) ended" if open_now else ""
        text = f"lost the tunnel to pod {self.pod}: {reason}{ended}"
        self.add_log(LogLevel.WARNING, f"{text}; checking the tunnel")
        self._tunnel_failed(SessionLost(reason), text)

    def _tunnel_failed(self, exc: BaseException, text: str) -> None:
        """A port-forward could not be opened: the tunnel, not the pod's backend, failed."""
        if isinstance(exc, Forbidden | Unauthorized):
            self._fatal = text
        else:
            self._fault = text
            self._fault_pod = None  # probe at once: the watch may not know yet
        self._wake.set()

    def _connection_failed(self, conn: Connection, local_port: int, remote: int, text: str) -> None:
        self.errors += 1
        conn.local.close()
        self.add_log(
            LogLevel.WARNING, f"an error occurred forwarding {local_port} -> {remote}: {text}"
        )
