"""The fake kubelet's side of a pod: dialing its ports (the port-forward's far end), the
TCP backends behind them, its logs, and the switches that make a kubelet unreachable or a
port refuse.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Iterator
from functools import partial

from aiohttp import web

from portfwd.sandbox.manifests import NODES
from portfwd.sandbox.state import ClusterState, PodRuntime
from portfwd.sandbox.topology import (
    BUILTIN_BACKENDS,
    PortSpec,
)

REFUSED = "connect: connection refused"


class Kubelet(ClusterState):
    """The kubelet's part of the cluster (see the module's doc)."""

    async def set_kubelet_reachable(self, node: str, reachable: bool) -> None:
        """A node's kubelet stops (or starts again) answering the API server.

        Its pods stay Ready in the API (a real node controller takes ~40 s to notice), but
        every port-forward to them fails at the upgrade with the API server's 500
        "error dialing backend: ...": the case where a forward must look past the API's
        view and try another pod.
        """
        if node not in dict(NODES):
            raise KeyError(f"no node {node}")
        if reachable:
            self.unreachable_nodes.discard(node)
        else:
            self.unreachable_nodes.add(node)
            # The API server's connections to that kubelet break: so do the port-forward
            # connections it was proxying (SPDY sessions and WebSockets to its pods).
            for transport in list(self._upgraded.get(node, ())):
                transport.abort()

    async def restart_kubelet(self, node: str) -> None:
        """A node's kubelet restarts: every port-forward connection it served breaks.

        Plain SPDY and v4 connections close. SPDY tunnelled in a WebSocket closes too in node
        mode B (`websocket_passthrough`); in mode A the API server keeps the client's
        WebSocket open and its session goes silent (an orphan: pings unanswered, each new
        stream closed with no data), as measured on a real v1.36 API server.
        """
        if node not in dict(NODES):
            raise KeyError(f"no node {node}")
        for transport in list(self._upgraded.get(node, ())):
            orphan = self._orphans.get(transport)
            if orphan is not None and not self.websocket_passthrough:
                orphan()
            else:
                transport.abort()

    def tunnelled(self, request: web.Request, orphan: Callable[[], None]) -> None:
        """A WebSocket-tunnelled SPDY session runs on this request (see restart_kubelet);
        forgotten when the connection ends (upgraded_connection)."""
        transport = request.transport
        if isinstance(transport, asyncio.Transport):
            self._orphans[transport] = orphan

    @property
    def open_tunnels(self) -> int:
        """Upgraded port-forward connections open now (tests and benches count them)."""
        return sum(len(t) for t in self._upgraded.values())

    @contextlib.contextmanager
    def upgraded_connection(self, node: str, request: web.Request) -> Iterator[None]:
        """Track an upgraded port-forward connection to a pod on `node` while it runs."""
        transport = request.transport
        if not isinstance(transport, asyncio.Transport):
            yield
            return
        self._upgraded.setdefault(node, set()).add(transport)
        try:
            yield
        finally:
            self._upgraded.get(node, set()).discard(transport)
            self._orphans.pop(transport, None)

    async def set_backend_refusing(
        self, ns: str, pod: str, port: int, refusing: bool = True
    ) -> None:
        rt = self._runtime.get((ns, pod))
        if rt is None:
            raise KeyError(f"no pod {ns}/{pod}")
        if refusing:
            rt.refusing.add(port)
        else:
            rt.refusing.discard(port)

    async def set_backend_silent(self, ns: str, pod: str, port: int, silent: bool = True) -> None:
        """The program behind `port` hangs: connections are accepted and never answered
        (a deadlocked server), until `silent` is False again."""
        rt = self._runtime.get((ns, pod))
        if rt is None:
            raise KeyError(f"no pod {ns}/{pod}")
        if silent:
            rt.silent.add(port)
        else:
            rt.silent.discard(port)

    def say(self, ns: str, name: str, *lines: str) -> None:
        """Lines the pod's containers write to their log (a follower sees them at once)."""
        rt = self._runtime.get((ns, name))
        if rt is None:
            raise KeyError(f"no pod {ns}/{name}")
        rt.said.extend(lines)
        self._notify()

    def set_chatty(self, ns: str, name: str, chatty: bool = True) -> None:
        """A pod whose followed log talks as fast as it is read (megabytes a second)."""
        rt = self._runtime.get((ns, name))
        if rt is None:
            raise KeyError(f"no pod {ns}/{name}")
        rt.chatty = chatty
        self._notify()

    def pod_log(self, ns: str, name: str, container: str | None) -> tuple[str, str | None]:
        """(log text, None) or ("", the kubelet's 400 message) for `kubectl logs`."""
        pod = self.store.get("pods", ns, name)
        rt = self._runtime.get((ns, name))
        if pod is None or rt is None:
            return "", f'pods "{name}" not found'
        names = [c["name"] for c in pod["spec"]["containers"]]
        if container is None:
            if len(names) > 1:
                return "", (
                    f"a container name must be specified for pod {name}, choose one of: "
                    f"[{' '.join(names)}]"
                )
            container = names[0]
        if container not in names:
            return "", f"container {container} is not valid for pod {name}"
        if rt.state in ("Pending", "ContainerCreating"):
            reason = "ContainerCreating"
            return "", f'container "{container}" in pod "{name}" is waiting to start: {reason}'
        lines = [f"{rt.started} sandbox: container {container} started on {rt.node}"]
        for spec in rt.ports.values():
            what = spec.backend or "nothing"
            lines.append(
                f"{rt.started} listening on :{spec.container_port}/{spec.protocol} ({what})"
            )
        if rt.state == "CrashLoopBackOff":
            lines.append(f"{rt.started} fatal: cannot reach the database: connection refused")
        elif rt.state == "NotReady":
            lines.append(f"{rt.started} readiness: warming caches, answering 503 to probes")
        lines.extend(rt.said)
        return "\n".join(lines) + "\n", None

    async def follow_pod_log(self, ns: str, name: str, uid: str) -> AsyncIterator[bytes]:
        """What `kubectl logs -f` reads after the log so far: each line the pod says, until
        the pod is gone (its container ended: the kubelet ends the stream). A chatty pod
        talks without pause, as fast as its reader takes it."""
        rt = self._runtime.get((ns, name))
        if rt is None:
            return
        seen = len(rt.said)
        n = 0
        chunk = b"".join(
            b"%s chatter: a line of a pod that logs megabytes a second ....................\n"
            % rt.started.encode()
            for _ in range(100)
        )

        def gone() -> bool:
            pod = self.store.get("pods", ns, name)
            return pod is None or pod["metadata"]["uid"] != uid

        while not gone():
            if rt.chatty:
                n += 1
                yield chunk
                if n % 10 == 0:
                    await asyncio.sleep(0)  # let the rest of the cluster run
                continue
            if len(rt.said) > seen:
                fresh, seen = rt.said[seen:], len(rt.said)
                yield "".join(line + "\n" for line in fresh).encode()
                continue
            # Woken by any change of the cluster (a line said, the pod deleted); the bound
            # only lets a follower that went away be noticed.
            await self._wait_until(partial(self._log_moved, rt, seen, gone), 5.0)

    @staticmethod
    def _log_moved(rt: PodRuntime, seen: int, gone: Callable[[], bool]) -> bool:
        return len(rt.said) > seen or rt.chatty or gone()

    # -- the fake kubelet's dial ----------------------------------------------------------
    def _runtime_for(self, ns: str, name: str, uid: str) -> PodRuntime:
        pod = self.store.get("pods", ns, name)
        rt = self._runtime.get((ns, name))
        if pod is None or rt is None or pod["metadata"]["uid"] != uid:
            raise ConnectionRefusedError(REFUSED)
        return rt

    async def dial(
        self, ns: str, name: str, uid: str, port: int
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        rt = self._runtime_for(ns, name, uid)
        # "Terminating" is only ever set on a pod whose container was running.
        running = rt.state in ("Running", "NotReady") or (
            rt.state == "Terminating" and self.terminating_keeps_connections
        )
        if not running or port in rt.refusing:
            raise ConnectionRefusedError(REFUSED)
        spec = rt.ports.get(port)
        if spec is None or spec.backend is None:
            raise ConnectionRefusedError(REFUSED)
        if port in rt.silent:
            spec = PortSpec(container_port=-port, name="", backend="silent")
        addr = await self._backend_address(ns, name, spec)
        reader, writer = await asyncio.open_connection(addr[0], addr[1])
        try:
            rt = self._runtime_for(ns, name, uid)  # the pod may have gone while we connected
        except ConnectionRefusedError:
            writer.close()
            raise
        # Kept to drop them when the pod goes; closed ones are pruned here, so the set stays
        # as small as the pod's open connections.
        rt.conns = {w for w in rt.conns if not w.is_closing()}
        rt.conns.add(writer)
        return reader, writer

    async def _backend_address(self, ns: str, name: str, spec: PortSpec) -> tuple[str, int]:
        assert spec.backend is not None
        if spec.backend not in BUILTIN_BACKENDS:
            host, _, port = spec.backend.rpartition(":")
            return host.strip("[]"), int(port)
        key = (ns, name, spec.container_port)
        # A port named https serves what its name promises: the http backend behind TLS.
        kind = "https" if spec.backend == "http" and spec.name == "https" else spec.backend
        async with self._backend_lock:
            addr = self._backend_addrs.get(key)
            if addr is None:
                addr = await self.backends.start_backend(kind, name)
                self._backend_addrs[key] = addr
            return addr

    def _drop_pod_connections(self, ns: str, name: str) -> None:
        rt = self._runtime.get((ns, name))
        if rt is not None:
            for w in list(rt.conns):
                w.close()
            rt.conns.clear()
        keys = [k for k in self._backend_addrs if k[0] == ns and k[1] == name]
        for k in keys:
            del self._backend_addrs[k]
        if keys and not any(k[1] == name for k in self._backend_addrs):
            self._spawn(self._stop_backend(name))

    async def _stop_backend(self, label: str) -> None:
        # Under the lock: a same-named successor (StatefulSet pod) cannot start its backend
        # before the old one is gone, so this never stops the new one.
        async with self._backend_lock:
            await self.backends.stop_backend(label)
