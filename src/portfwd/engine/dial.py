"""Open a connection to a cluster Service by name: the engine side of the proxy.

`Dialer.dial(client, namespace, service, port)` answers a stream to a Ready pod behind the
Service, the way a Service would route it: the Service port is translated to the pod's
targetPort (numbers and names), the pod is chosen among every Ready endpoint by least open
streams (ties in turn, as `--spread` does), and the stream is opened on the pod's *shared*
session in the Manager's TunnelPool, so a thousand proxied connections to one pod are one
upgrade, and the session closes by itself when idle. A headless Service's pod is dialled by
name (`pod=`). What it knows comes from the same watch caches the forwards use (a Follower per
Service port), kept for the most recently used names only (:data:`MAX_FOLLOWED`).
"""

from __future__ import annotations

import asyncio
from collections import Counter, OrderedDict
from dataclasses import dataclass
from typing import Any

from portfwd.engine.follow import Follower, Gone, Ready, Unwatched, Waiting
from portfwd.engine.informers import Informer, InformerPool
from portfwd.errors import PortfwdError
from portfwd.kube.client import KubeClient
from portfwd.kube.objects import Service
from portfwd.kube.resolve import Resolution
from portfwd.kube.targets import Target
from portfwd.tunnel.pool import PodTunnel, TunnelPool
from portfwd.tunnel.protocol import TunnelStream

MAX_FOLLOWED = 128  # Service ports whose watches are kept
SYNC_WAIT = 10.0  # seconds a dial waits for the caches (the first list) or a Ready pod


class DialError(PortfwdError):
    """The name cannot be reached; `unknown` when no such Service exists (vs. not Ready)."""

    def __init__(self, message: str, *, unknown: bool = False) -> None:
        super().__init__(message)
        self.unknown = unknown


@dataclass
class _Followed:
    follower: Follower
    changed: asyncio.Event


class Dialer:
    def __init__(self, informers: InformerPool, tunnels: TunnelPool) -> None:
        self._informers = informers
        self._tunnels = tunnels
        self._followed: OrderedDict[tuple[int, str, str, int], _Followed] = OrderedDict()
        self._services: OrderedDict[tuple[int, str, str], Informer[Any]] = OrderedDict()
        self._pod_tunnels: dict[int, PodTunnel] = {}
        self.open_streams: Counter[tuple[str, str]] = Counter()  # (namespace, pod) -> count
        self._turn = 0

    async def service(self, client: KubeClient, namespace: str, name: str) -> Service:
        """The Service from the watch cache (DialError when there is none)."""
        key = (id(client), namespace, name)
        informer = self._services.get(key)
        if informer is None:
            informer = self._informers.acquire(
                client, "services", namespace, field_selector=f"metadata.name={name}"
            )
            self._services[key] = informer
            self._trim(self._services, lambda i: self._informers.release(i))
        self._services.move_to_end(key)
        changed = asyncio.Event()
        informer.listen(changed)
        try:
            async with asyncio.timeout(SYNC_WAIT):
                while not informer.synced and informer.error is None:
                    await changed.wait()
                    changed.clear()
        except TimeoutError:
            raise DialError(
                f"the API server did not list services in {namespace} in time"
            ) from None
        finally:
            informer.unlisten(changed)
        if informer.error is not None and not informer.synced:
            raise DialError(f"cannot watch services in {namespace}: {informer.error}")
        svc = informer.objects.get(name)
        if not isinstance(svc, Service):
            raise DialError(f'no Service "{name}" in namespace "{namespace}"', unknown=True)
        return svc

    @staticmethod
    def default_port(svc: Service) -> int:
        """The port a name without one means (HTTP by Host header): 80, a port named http,
        else the first TCP port."""
        tcp = [p for p in svc.ports if p.protocol.upper() == "TCP"]
        if not tcp:
            raise DialError(f"Service {svc.name} has no TCP port")
        for p in tcp:
            if p.port == 80:
                return 80
        for p in tcp:
            if p.name == "http":
                return p.port
        return tcp[0].port

    async def routes(
        self, client: KubeClient, namespace: str, service: str, port: int
    ) -> list[Resolution]:
        """Every Ready endpoint of the Service port, with its container port."""
        key = (id(client), namespace, service, port)
        followed = self._followed.get(key)
        if followed is None:
            changed = asyncio.Event()
            follower = Follower(
                self._informers, client, namespace, Target("service", service), port, changed
            )
            follower.start()
            followed = self._followed[key] = _Followed(follower, changed)
            self._trim(self._followed, lambda f: f.follower.close())
        self._followed.move_to_end(key)
        follower = followed.follower
        try:
            async with asyncio.timeout(SYNC_WAIT):
                while True:
                    followed.changed.clear()
                    outcome = follower.evaluate(None)
                    if isinstance(outcome, Ready):
                        return follower.spread() or [outcome.resolution]
                    if isinstance(outcome, Gone):
                        raise DialError(outcome.reason, unknown=True)
                    if isinstance(outcome, Unwatched):
                        raise DialError(outcome.reason)
                    if isinstance(outcome, Waiting) and outcome.next_retry_at is None:
                        raise DialError(outcome.reason)  # no Ready pod now
                    await followed.changed.wait()
        except TimeoutError:
            raise DialError(
                f"svc/{service} in {namespace}: no answer from the API server"
            ) from None

    async def dial(
        self, client: KubeClient, namespace: str, service: str, port: int, pod: str = ""
    ) -> tuple[TunnelStream, Resolution]:
        """A stream to a Ready pod of the Service (or to `pod`, one of its endpoints)."""
        routes = await self.routes(client, namespace, service, port)
        if pod:
            routes = [r for r in routes if r.pod.name == pod]
            if not routes:
                raise DialError(f"pod {pod} is not a Ready endpoint of svc/{service}", unknown=True)
        route = self.pick(namespace, routes)
        tunnel = self._pod_tunnels.get(id(client))
        if tunnel is None:
            tunnel = self._pod_tunnels[id(client)] = self._tunnels.tunnel(client)
        stream = await tunnel.open(
            namespace, route.pod.name, route.container_port, route.pod.meta.uid
        )
        return stream, route

    def pick(self, namespace: str, routes: list[Resolution]) -> Resolution:
        """Least open streams; ties in turn."""
        self._turn += 1
        n = len(routes)
        order = [routes[(self._turn + i) % n] for i in range(n)]
        return min(order, key=lambda r: self.open_streams[(namespace, r.pod.name)])

    @staticmethod
    def _trim(cache: OrderedDict[Any, Any], drop: Any) -> None:
        while len(cache) > MAX_FOLLOWED:
            _, value = cache.popitem(last=False)
            drop(value)

    def close(self) -> None:
        """Release every watch (the Manager's pools close the rest)."""
        for followed in self._followed.values():
            followed.follower.close()
        self._followed.clear()
        for informer in self._services.values():
            self._informers.release(informer)
        self._services.clear()
        for tunnel in self._pod_tunnels.values():
            tunnel.release()
        self._pod_tunnels.clear()
