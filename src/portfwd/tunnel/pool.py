"""Which protocol, and which session: the tunnels of every forward, owned in one place.

:class:`TunnelPool` belongs to the Manager (beside its client and informer pools). Each forward
gets a :class:`PodTunnel` from it: the forward's view of the tunnel to whatever pod it routes
to. Behind them the pool keeps one SPDY session per (cluster client, namespace, pod), shared
by every forward and connection to that pod; it is opened when a forward goes active on the
pod (`check`), kept while some forward routes there (`hold`), re-opened on demand after it was
lost, and closed :data:`IDLE_CLOSE` seconds after the last holder and stream left.

Protocols (`--protocol`), per forward:

- `auto` (default): SPDY tunnelled in a WebSocket, then plain SPDY when the upgrade is
  refused (as kubectl falls back: e.g. the usual Role grants only `create`, and a WebSocket
  upgrade needs `get`), then the legacy `v4.channel.k8s.io`. What worked is remembered per
  (client, namespace) and tried first next time. `KUBECTL_PORT_FORWARD_WEBSOCKETS=false` in
  the environment means plain SPDY only, as for kubectl.
- `websocket`, `spdy`, `v4`: that one only.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import re
import weakref
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from portfwd.constants import PORTFORWARD_PROTOCOL_CHOICES
from portfwd.errors import InputError
from portfwd.kube.client import KubeClient
from portfwd.kube.errors import ApiError, Forbidden, NotFound, Unauthorized
from portfwd.kube.upgrade import UpgradeRefused
from portfwd.tunnel.protocol import SessionLost, TunnelStream
from portfwd.tunnel.spdy import SpdySession
from portfwd.tunnel.spdy_portforward import SpdyPortForward, open_session
from portfwd.tunnel.ws_v4 import V4_NAME, WsV4Tunnel

log = logging.getLogger(__name__)

PROTOCOL_CHOICES = PORTFORWARD_PROTOCOL_CHOICES
PROTOCOL_NAMES = {
    "websocket": "SPDY over WebSocket",
    "spdy": "SPDY",
    "v4": V4_NAME,
}
SHORT_NAMES = {"websocket": "SPDY over WebSocket", "spdy": "SPDY", "v4": "v4.channel.k8s.io"}
# Answers to an upgrade that say "not this way" rather than "not at all": try the next one.
# From the WebSocket, any failed upgrade falls back to plain SPDY, as kubectl's does (a 500
# "error dialing backend" there may work over SPDY); from SPDY, only these go on to v4.
FALLBACK_STATUSES = frozenset({400, 403, 405, 426, 501})
IDLE_CLOSE = 10.0  # seconds a session with no holder and no stream stays open
# v4 pays a TCP connect, a TLS handshake and an upgrade per connection: a burst of 500 at once
# on a loaded machine timed out at the connect timeout (the forward then took the API server
# for unreachable). At most this many are under way per cluster client; the rest queue here.
V4_UPGRADES_AT_ONCE = 32
CHECK_PING_TIMEOUT = 5.0  # a live session answers a ping within this when a forward checks
CLOSE_TIMEOUT = 2.0
_FALSE = frozenset({"0", "f", "false"})  # Go's strconv.ParseBool, as kubectl reads the variable
_VERB_RE = re.compile(r'cannot ([\w-]+) resource "pods/portforward"')


def check_protocol(value: str) -> str:
    """The protocol name, or InputError naming the choices."""
    if value not in PROTOCOL_CHOICES:
        raise InputError(
            f'unknown protocol "{value}": use one of {", ".join(PROTOCOL_CHOICES)}'
            " (auto tries websocket, then spdy, then v4)"
        )
    return value


def protocol_order(mode: str, environ: Mapping[str, str]) -> tuple[str, ...]:
    """The protocols to try, in order, for a forward asking for `mode`."""
    check_protocol(mode)
    if mode != "auto":
        return (mode,)
    if environ.get("KUBECTL_PORT_FORWARD_WEBSOCKETS", "").strip().lower() in _FALSE:
        return ("spdy",)
    return ("websocket", "spdy", "v4")


def refused_everywhere(
    refusals: list[tuple[str, ApiError]], client: KubeClient, namespace: str, pod: str
) -> ApiError:
    """One error for a port-forward every protocol refused.

    All 403: a Forbidden naming what each path needs and what the server said of each, so the
    user knows which verbs to ask for. Otherwise the most telling refusal (not a bare "wrong
    protocol" when a real answer exists)."""
    if refusals and all(e.status == 403 for _, e in refusals):
        user = client.conn.user
        said = []
        for protocol, error in refusals:
            match = _VERB_RE.search(error.api_message)
            why = f"cannot {match[1]}" if match else "no reason given"
            said.append(f"{SHORT_NAMES[protocol]} ({why})")
            who = re.search(r'User "([^"]*)"', error.api_message)
            if who:
                user = who[1]
        listed = ", ".join(said[:-1]) + " and " + said[-1] if len(said) > 1 else said[0]
        return Forbidden(
            f'user "{user}" may not port-forward to pod {pod} in namespace "{namespace}" '
            f'(403 Forbidden, context "{client.context}"): refused over {listed}; '
            'WebSocket upgrades need "get" and "create" on pods/portforward, SPDY needs '
            '"create": ask your cluster admin for a Role granting both',
            status=403,
            reason="Forbidden",
            api_message=refusals[-1][1].api_message,
        )
    telling = [e for _, e in refusals if not isinstance(e, UpgradeRefused)]
    return (telling or [e for _, e in refusals])[-1]


@dataclass(eq=False)
class _Entry:
    """The sessions to one pod (one per SPDY carrier: forwards on different protocols to
    one pod each keep theirs, none retires another's), and who keeps them."""

    key: tuple[int, str, str, str]
    client: KubeClient
    namespace: str
    pod: str
    sessions: dict[str, SpdySession] = field(default_factory=dict)
    opening: dict[str, asyncio.Task[SpdySession]] = field(default_factory=dict)
    holders: set[PodTunnel] = field(default_factory=set)
    idle_timer: asyncio.TimerHandle | None = None

    def protocol_of(self, session: SpdySession) -> str | None:
        for protocol, mine in self.sessions.items():
            if mine is session:
                return protocol
        return None


class TunnelPool:
    """Sessions and protocol choices of every forward of one Manager."""

    def __init__(
        self,
        *,
        ping_interval: float = 30.0,
        environ: Mapping[str, str] | None = None,
        idle_close: float = IDLE_CLOSE,
    ) -> None:
        self.ping_interval = ping_interval
        self.environ: Mapping[str, str] = os.environ if environ is None else environ
        self.idle_close = idle_close
        self._entries: dict[tuple[int, str, str, str], _Entry] = {}
        self._chosen: dict[tuple[int, str, str], str] = {}
        self._reaping: set[asyncio.Task[None]] = set()
        self._reaped: weakref.WeakSet[SpdySession] = weakref.WeakSet()
        self._v4_slots: weakref.WeakKeyDictionary[KubeClient, asyncio.Semaphore] = (
            weakref.WeakKeyDictionary()
        )
        self._closed = False
        self.sessions_opened = 0  # for tests and the bench

    def tunnel(
        self,
        client: KubeClient,
        protocol: str = "auto",
        on_lost: Callable[[str], None] | None = None,
    ) -> PodTunnel:
        """A forward's tunnel; `on_lost(reason)` when a session it holds is lost."""
        return PodTunnel(self, client, protocol_order(protocol, self.environ), protocol, on_lost)

    def sessions(self) -> list[SpdySession]:
        return [s for e in self._entries.values() for s in e.sessions.values()]

    def v4_slots(self, client: KubeClient) -> asyncio.Semaphore:
        """The v4 upgrades under way to `client`'s API server (see V4_UPGRADES_AT_ONCE)."""
        slots = self._v4_slots.get(client)
        if slots is None:
            slots = self._v4_slots[client] = asyncio.Semaphore(V4_UPGRADES_AT_ONCE)
        return slots

    # -- sessions ---------------------------------------------------------------------------

    def _entry(self, client: KubeClient, namespace: str, pod: str, uid: str) -> _Entry:
        key = (id(client), namespace, pod, uid)
        entry = self._entries.get(key)
        if entry is None:
            entry = self._entries[key] = _Entry(key, client, namespace, pod)
        return entry

    def _live_session(
        self, client: KubeClient, namespace: str, pod: str, uid: str, protocol: str
    ) -> SpdySession | None:
        """The usable session to the pod for `protocol` if one is open now (none is opened),
        its entry kept from idling."""
        entry = self._entries.get((id(client), namespace, pod, uid))
        session = entry.sessions.get(protocol) if entry is not None else None
        if entry is None or session is None or not session.usable:
            return None
        if entry.idle_timer is not None:
            entry.idle_timer.cancel()
            entry.idle_timer = None
        return session

    async def _session(self, entry: _Entry, protocol: str) -> tuple[SpdySession, bool]:
        """(session, fresh): the entry's live session for `protocol`, opened if need be."""
        if self._closed:
            raise SessionLost("portfwd is shutting down")
        session = entry.sessions.get(protocol)
        if session is not None and session.usable:
            return session, False
        task = entry.opening.get(protocol)
        if task is None:
            task = entry.opening[protocol] = asyncio.create_task(
                self._open(entry, protocol), name=f"spdy-open-{protocol}-{entry.pod}"
            )
            task.add_done_callback(functools.partial(self._opened, entry, protocol))
        return await asyncio.shield(task), True

    async def _open(self, entry: _Entry, protocol: str) -> SpdySession:
        session = await open_session(
            entry.client,
            entry.namespace,
            entry.pod,
            over_websocket=protocol == "websocket",
            ping_interval=self.ping_interval,
            on_lost=functools.partial(self._lost, entry),
            on_idle=lambda _session: self._maybe_idle(entry),
        )
        self.sessions_opened += 1
        if self._closed:
            session.abort("portfwd is shutting down")
            raise SessionLost("portfwd is shutting down")
        return session

    def _opened(self, entry: _Entry, protocol: str, task: asyncio.Task[SpdySession]) -> None:
        if entry.opening.get(protocol) is task:
            del entry.opening[protocol]
        if task.cancelled() or task.exception() is not None:
            self._maybe_idle(entry)
            return
        session = task.result()
        old = entry.sessions.get(protocol)
        entry.sessions[protocol] = session
        if old is not None and old is not session:
            old.finish()  # going away, or lost meanwhile: no new streams there
        self._maybe_idle(entry)

    def _lost(self, entry: _Entry, session: SpdySession) -> None:
        self._reap(session)
        protocol = entry.protocol_of(session)
        if protocol is None:
            return  # one that was replaced, closing by itself
        del entry.sessions[protocol]
        reason = session.lost_reason or "the tunnel was lost"
        for holder in list(entry.holders):
            if holder.protocol in ("", protocol):
                holder._session_lost(reason)
        self._maybe_idle(entry)

    def _retire(self, entry: _Entry, reason: str) -> None:
        sessions = list(entry.sessions.values())
        entry.sessions.clear()
        for session in sessions:
            self._retire_session(session, reason)

    def _retire_session(self, session: SpdySession, reason: str) -> None:
        session.close(f"closed by portfwd: {reason}")  # on_lost reaps it

    def _reap(self, session: SpdySession) -> None:
        """Await the session's connection in the background (bounded), then drop it."""
        if session in self._reaped:
            return
        self._reaped.add(session)

        async def reap() -> None:
            try:
                async with asyncio.timeout(CLOSE_TIMEOUT):
                    await session.wait_closed()
            except TimeoutError:
                session.abort("did not close in time")
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(CLOSE_TIMEOUT):
                        await session.wait_closed()

        task = asyncio.get_running_loop().create_task(reap(), name=f"reap-{session.name}")
        self._reaping.add(task)
        task.add_done_callback(self._reaping.discard)

    def _maybe_idle(self, entry: _Entry) -> None:
        """No holder and no stream: close the sessions after a while; forget the entry."""
        if entry.idle_timer is not None:
            entry.idle_timer.cancel()
            entry.idle_timer = None
        if entry.holders or entry.opening:
            return
        if not entry.sessions:
            if self._entries.get(entry.key) is entry:
                del self._entries[entry.key]
            return
        if not self._closed and all(s.open_streams == 0 for s in entry.sessions.values()):
            entry.idle_timer = asyncio.get_running_loop().call_later(
                self.idle_close, self._idle_expired, entry
            )

    def _idle_expired(self, entry: _Entry) -> None:
        entry.idle_timer = None
        if entry.holders or entry.opening:
            return
        if any(s.open_streams for s in entry.sessions.values()):
            return
        self._retire(entry, "idle")
        if self._entries.get(entry.key) is entry:
            del self._entries[entry.key]

    # -- shutdown -----------------------------------------------------------------------------

    async def close(self) -> None:
        """Close every session (GOAWAY, flush, close), bounded in time; idempotent."""
        self._closed = True
        openings = [t for e in self._entries.values() for t in e.opening.values()]
        for task in openings:
            task.cancel()
        if openings:
            await asyncio.wait(openings)
        for entry in list(self._entries.values()):
            if entry.idle_timer is not None:
                entry.idle_timer.cancel()
            entry.holders.clear()
            self._retire(entry, "shutting down")
        self._entries.clear()
        while self._reaping:
            await asyncio.wait(set(self._reaping))


class PodTunnel:
    """One forward's tunnel: the protocol it may use, and the pod it routes to now."""

    def __init__(
        self,
        pool: TunnelPool,
        client: KubeClient,
        order: tuple[str, ...],
        mode: str,
        on_lost: Callable[[str], None] | None,
    ) -> None:
        self._pool = pool
        self._client = client
        self._order = order
        self._mode = mode
        self._on_lost = on_lost
        self._held: _Entry | None = None
        self.name = ""
        self.protocol = ""

    def _chosen_key(self, namespace: str) -> tuple[int, str, str]:
        return (id(self._client), namespace, self._mode)

    # -- TunnelProtocol -----------------------------------------------------------------------

    async def open(self, namespace: str, pod: str, port: int, uid: str = "") -> TunnelStream:
        protocol = self._pool._chosen.get(self._chosen_key(namespace))
        if protocol is None:
            protocol = await self._negotiate(namespace, pod, port, uid)
            return await self._open_with(protocol, namespace, pod, port, uid)
        try:
            return await self._open_with(protocol, namespace, pod, port, uid)
        except ApiError as exc:
            if not self._may_fall_back(exc, protocol, again=True):
                raise
            # What worked before is refused now (RBAC changed, another API server behind a
            # load balancer): choose again.
            self._pool._chosen.pop(self._chosen_key(namespace), None)
            protocol = await self._negotiate(namespace, pod, port, uid)
            return await self._open_with(protocol, namespace, pod, port, uid)

    def open_now(self, namespace: str, pod: str, port: int, uid: str = "") -> TunnelStream | None:
        """A stream to `pod:port` already on its way to the kubelet, when that takes no
        waiting: the protocol was chosen and a session to the pod is open (SPDY). None
        otherwise: `open` then does what it takes.

        A connection's streams opened as it is accepted reach the kubelet while the client
        is still sending its first bytes, so the kubelet dials the pod meanwhile (kubectl
        sends them at accept too)."""
        protocol = self._pool._chosen.get(self._chosen_key(namespace))
        if protocol is None or protocol == "v4" or self._pool._closed:
            return None
        session = self._pool._live_session(self._client, namespace, pod, uid, protocol)
        if session is None:
            return None
        error, data = session.open_pair()
        stream = SpdyPortForward(session, error, data, port)
        try:
            stream.commit()
        except SessionLost:
            return None
        return stream

    async def check(self, namespace: str, pod: str, port: int, uid: str = "") -> str:
        protocol = self._pool._chosen.get(self._chosen_key(namespace))
        if protocol is None:
            protocol = await self._negotiate(namespace, pod, port, uid)
        else:
            try:
                await self._establish(protocol, namespace, pod, port, uid, verify=True)
            except ApiError as exc:
                if not self._may_fall_back(exc, protocol, again=True):
                    raise
                self._pool._chosen.pop(self._chosen_key(namespace), None)
                protocol = await self._negotiate(namespace, pod, port, uid)
        self.protocol = protocol
        self.name = PROTOCOL_NAMES[protocol]
        return self.name

    def hold(self, namespace: str, pod: str, uid: str = "") -> None:
        entry = self._pool._entry(self._client, namespace, pod, uid)
        if entry is self._held:
            return
        self.release()
        self._held = entry
        entry.holders.add(self)
        if entry.idle_timer is not None:
            entry.idle_timer.cancel()
            entry.idle_timer = None

    def release(self) -> None:
        entry, self._held = self._held, None
        if entry is not None:
            entry.holders.discard(self)
            self._pool._maybe_idle(entry)

    def last_ping(self) -> tuple[float, float] | None:
        """The last answered PING of the session this tunnel holds: (wall clock, round
        trip); None without one (v4 has no session, or none answered yet)."""
        entry = self._held
        session = entry.sessions.get(self.protocol) if entry is not None else None
        return session.last_ping if session is not None else None

    # -- inside -------------------------------------------------------------------------------

    def _may_fall_back(self, exc: ApiError, protocol: str, *, again: bool = False) -> bool:
        """May a refusal of `protocol` go on to the next one (`again`: may a refusal of the
        protocol chosen before start the choice over)?"""
        if len(self._order) < 2 or (protocol == self._order[-1] and not again):
            return False
        if isinstance(exc, UpgradeRefused) or exc.status in FALLBACK_STATUSES:
            return True
        # Any other failed WebSocket upgrade, but not a missing pod or bad credentials:
        # those answers are the same on every path.
        return protocol == "websocket" and not isinstance(exc, Unauthorized | NotFound)

    def _session_lost(self, reason: str) -> None:
        if self._on_lost is not None:
            self._on_lost(reason)

    async def _open_with(
        self, protocol: str, namespace: str, pod: str, port: int, uid: str
    ) -> TunnelStream:
        if protocol == "v4":
            async with self._pool.v4_slots(self._client):
                return await WsV4Tunnel(self._client).open(namespace, pod, port)
        entry = self._pool._entry(self._client, namespace, pod, uid)
        if entry.idle_timer is not None:
            entry.idle_timer.cancel()
            entry.idle_timer = None
        for attempt in (1, 2):
            session, fresh = await self._pool._session(entry, protocol)
            try:
                error, data = session.open_pair()
            except SessionLost:
                if fresh or attempt == 2:
                    raise
                continue  # it was lost meanwhile: once more, on a new session
            return SpdyPortForward(session, error, data, port)
        raise AssertionError("unreachable")

    async def _establish(
        self,
        protocol: str,
        namespace: str,
        pod: str,
        port: int,
        uid: str,
        *,
        verify: bool = False,
    ) -> None:
        """Make `protocol` usable to `pod` now: a (live) session, or a v4 test stream."""
        if protocol == "v4":
            await WsV4Tunnel(self._client).check(namespace, pod, port)
            return
        entry = self._pool._entry(self._client, namespace, pod, uid)
        session, fresh = await self._pool._session(entry, protocol)
        if verify and not fresh:
            try:
                await session.ping(CHECK_PING_TIMEOUT)
            except SessionLost:
                await self._pool._session(entry, protocol)  # lost: open a new one
        self._pool._maybe_idle(entry)

    async def _negotiate(self, namespace: str, pod: str, port: int, uid: str) -> str:
        """Try the protocols in order; the first that works is remembered and returned."""
        refusals: list[tuple[str, ApiError]] = []
        for protocol in self._order:
            try:
                await self._establish(protocol, namespace, pod, port, uid)
            except ApiError as exc:
                refusals.append((protocol, exc))
                if self._may_fall_back(exc, protocol):
                    log.debug("%s refused for pod %s: %s", protocol, pod, exc)
                    continue
                if len(refusals) == 1:
                    raise
                raise refused_everywhere(refusals, self._client, namespace, pod) from None
            self._pool._chosen[self._chosen_key(namespace)] = protocol
            self.protocol = protocol
            self.name = PROTOCOL_NAMES[protocol]
            return protocol
        raise AssertionError("unreachable")
