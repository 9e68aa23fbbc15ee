"""Where a forward's new connections go, and how a connection waits for somewhere to go.

The supervisor decides (`use` a resolution, or `clear` it while there is no usable pod);
connections only read. Two events carry the decisions to waiting connections without
polling: `routable` is set exactly while there is a route, and a fresh `changed` event is set
and replaced whenever a route is taken (so a connection whose tunnel just failed can wait for
*another* decision, not the one it already tried).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from portfwd.kube.resolve import Resolution
from portfwd.tunnel.pool import PodTunnel


class Router:
    def __init__(self) -> None:
        self.route: Resolution | None = None
        self.tunnel: PodTunnel | None = None  # set once the forward has a client
        self._routable = asyncio.Event()
        self._changed = asyncio.Event()

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
