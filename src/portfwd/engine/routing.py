"""Where a forward's new connections go, and how a connection waits for somewhere to go.

The supervisor decides (`use` a resolution, or `clear` it while there is no usable pod);
connections only read. Two events carry the decisions to waiting connections without
polling: `routable` is set exactly while there is a route, and a fresh `changed` event is set
and replaced whenever a route is taken (so a connection whose tunnel just failed can wait for
*another* decision, not the one it already tried).

A forward that behaves like a Service (`--spread`) also has `spread`: every pod that may take
a new connection now (Ready, not terminating). `pick` chooses among them by **least
connections**, ties broken round-robin: a Service mostly carries long-lived connections
(databases, HTTP keep-alive, gRPC) whose count says more about a pod's load than turns taken,
and the round-robin tie-break still spreads a run of short connections over every pod. Each
pod of the spread is held by a tunnel of its own (its session stays open and is opened ahead
of need), so a pod leaving the spread only stops getting new connections: its open ones
finish on their session.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping, Sequence

from portfwd.kube.resolve import Resolution
from portfwd.tunnel.pool import PodTunnel

log = logging.getLogger(__name__)


class Router:
    def __init__(self) -> None:
        self.route: Resolution | None = None
        self.tunnel: PodTunnel | None = None  # set once the forward has a client
        self._routable = asyncio.Event()
        self._changed = asyncio.Event()
        self.spread: tuple[Resolution, ...] = ()  # --spread: every pod new connections may use
        self.holder: Callable[[], PodTunnel] | None = None  # a tunnel to hold one spread pod
        self._holders: dict[str, PodTunnel] = {}  # pod uid or name -> its holder
        self._warming: dict[str, asyncio.Task[None]] = {}  # pod key -> its session opening
        self._tasks: set[asyncio.Task[None]] = set()  # every opening not finished yet
        self._turn = 0

    @property
    def routable(self) -> bool:
        return self._routable.is_set()

    def use(self, namespace: str, resolution: Resolution) -> None:
        """Send new connections to this pod (and keep its tunnel's session open)."""
        if self.tunnel is not None:
            self.tunnel.hold(namespace, resolution.pod.name, resolution.pod.meta.uid)
        self.route = resolution
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()
        self._routable.set()

    def clear(self) -> None:
        """No pod to go to: new connections wait; the tunnel may let its session go."""
        self.route = None
        self._routable.clear()
        if self.tunnel is not None:
            self.tunnel.release()
        self.use_spread("", ())

    def use_spread(self, namespace: str, routes: Sequence[Resolution]) -> None:
        """--spread: new connections may go to any of `routes` (the route in use included).

        Each pod's session is held (and opened now, in the background) while it is in the
        spread; a pod that left it is released: its open streams finish, nothing new goes there.
        """
        self.spread = tuple(routes)
        keep = {_key(r): r for r in routes}
        for key in [k for k in self._holders if k not in keep]:
            self._holders.pop(key).release()
            task = self._warming.pop(key, None)
            if task is not None:
                task.cancel()
        if self.holder is None:
            return
        for key, route in keep.items():
            if key in self._holders:
                continue
            holder = self._holders[key] = self.holder()
            holder.hold(namespace, route.pod.name, route.pod.meta.uid)
            task = asyncio.create_task(
                self._warm(key, holder, namespace, route), name=f"warm-{route.pod.name}"
            )
            self._warming[key] = task
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _warm(self, key: str, holder: PodTunnel, namespace: str, route: Resolution) -> None:
        """Open the pod's session ahead of need; a failure shows on the first connection."""
        try:
            await holder.check(namespace, route.pod.name, route.container_port, route.pod.meta.uid)
        except Exception as exc:
            log.debug("opening a session to pod %s ahead of need failed: %s", route.pod.name, exc)
        finally:
            if self._warming.get(key) is asyncio.current_task():
                del self._warming[key]

    async def close(self) -> None:
        """Release every spread pod and await the sessions being opened ahead."""
        self.use_spread("", ())
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks)

    def pick(self, load: Mapping[str, int]) -> Resolution | None:
        """Where a new connection goes: the route, or with a spread the pod with the fewest
        open connections (`load`: pod name -> count), ties taken in turn."""
        spread = self.spread
        if not spread or self.route is None:
            return self.route
        self._turn += 1
        n = len(spread)
        order = [spread[(self._turn + i) % n] for i in range(n)]
        return min(order, key=lambda r: load.get(r.pod.name, 0))

    async def wait(self, within: float) -> Resolution | None:
        """The route now, or the first one within `within` seconds (None after).

        The route may be set and cleared again before a waiter runs (a probe succeeded, then
        the pod went away), so it loops until a route holds, within one deadline.
        """
        if self.route is not None:
            return self.route
        try:
            async with asyncio.timeout(within):
                while self.route is None:
                    await self._routable.wait()
        except TimeoutError:
            return None
        return self.route

    async def wait_healed(self, within: float, faulty: Callable[[], bool]) -> Resolution | None:
        """After a tunnel failure: the route once the forward has a working pod again (a
        route, and `faulty()` false after a successful probe), or None after `within` seconds."""
        try:
            async with asyncio.timeout(within):
                while self.route is None or faulty():
                    await self._changed.wait()
        except TimeoutError:
            return None
        return self.route


def _key(route: Resolution) -> str:
    return route.pod.meta.uid or route.pod.name
