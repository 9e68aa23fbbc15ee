"""What every part of a sandbox cluster shares: its objects, the pods' runtime, its owned
tasks and the change signal waits are built on.

`ClusterState` takes SandboxCluster's constructor options. The parts stack on it, each in a
module of its own, each using only what lies below it:
state -> kubelet -> pods -> endpoints -> controllers -> seeding -> controls -> cluster.
Controllers are synchronous reconcilers run right after each mutation (so a caller sees a
consistent cluster when its call returns) plus a few owned asyncio tasks for what takes time
in a real cluster: a new pod turning Ready, a terminating pod going away, a rolling update.
There is no polling loop anywhere: tasks sleep for a known delay or wait for an event.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

from portfwd.sandbox.auth import Tokens
from portfwd.sandbox.backends import BackendPool
from portfwd.sandbox.events import EventRecorder
from portfwd.sandbox.kubeconfig import DEFAULT_NAME
from portfwd.sandbox.pki import SandboxPKI
from portfwd.sandbox.store import Obj, Store
from portfwd.sandbox.topology import (
    PortSpec,
    Topology,
)


@dataclass
class PodRuntime:
    """What the fake kubelet knows about a pod beyond its API object."""

    state: str
    node: str | None
    node_ip: str | None
    ip: str
    started: str
    ports: dict[int, PortSpec]
    serving: bool = False  # Ready at the moment termination began
    refusing: set[int] = field(default_factory=set)
    silent: set[int] = field(default_factory=set)  # accept, read, never answer (a hung app)
    conns: set[asyncio.StreamWriter] = field(default_factory=set)
    said: list[str] = field(default_factory=list)  # lines a test wrote to its log (say)
    chatty: bool = False  # a followed log of this pod talks as fast as it is read


class ClusterState:
    """The shared state (see the module's doc); `SandboxCluster`'s constructor."""

    def __init__(
        self,
        topology: Path | dict[str, Any] | None = None,
        *,
        name: str = DEFAULT_NAME,
        host: str = "127.0.0.1",
        port: int = 0,
        workdir: Path | None = None,
        replacement_ready_delay: float = 0.5,
        close_linger: float = 1.0,
        termination_grace: float = 0.2,
        terminating_keeps_connections: bool = False,
        kubeconfig_path: Path | None = None,
        bookmark_interval: float = 5.0,
        watch_history: int = 1000,
    ) -> None:
        self._topology_source = topology
        # Its admin context's name (kubeconfig.py); backends tell it (X-Sandbox-Cluster).
        self.name = name
        self.topology = Topology()  # loaded by start(), off the event loop
        self.host = host
        self.port = port
        self.replacement_ready_delay = replacement_ready_delay
        self.close_linger = close_linger
        self.termination_grace = termination_grace
        # False (the default): a deleted pod's connections drop at once and new dials are
        # refused. True: as a real kubelet, the container keeps serving open and new
        # connections until it is gone (after termination_grace).
        self.terminating_keeps_connections = terminating_keeps_connections
        self.portforward_requests = 0  # port-forward upgrades accepted (WebSocket and SPDY)
        self.api_requests = 0  # every request that reached the API, watches included
        self.spdy_sessions = 0  # of those, SPDY sessions (plain or in a WebSocket)
        # Every port-forward upgrade that got past RBAC and the pod lookup, by form:
        # "websocket-spdy", "spdy" or "v4" (whether then accepted or refused).
        self.portforward_attempts: list[str] = []
        # What the API server in front of the kubelet does, as switches for tests:
        # a 1.35+ WebSocket upgrade also needs `create` (AuthorizePodWebsocketUpgrade...);
        self.websocket_needs_create = True
        # an API server before KEP-4006 (1.29 and older): WebSocket-tunnelled SPDY is not
        # intercepted and the kubelet refuses the subprotocol (403, empty body);
        self.refuse_websocket_spdy = False
        # a proxy that drops SPDY upgrades: the plain SPDY POST is refused (400).
        self.refuse_spdy = False
        # a WebSocket upgrade (v4 or tunnelled SPDY) that fails with a 500 InternalError
        # carrying this message, while plain SPDY works (measured: the WebSocket path could
        # not reach the kubelet, "error dialing backend: ...").
        self.fail_websocket_upgrades: str | None = None
        # The container runtime's order for a failed connection: containerd's (False: the
        # kubelet writes the error stream, then closes the data stream) or CRI-O's (True:
        # the data stream closes first, the reason follows).
        self.crio_error_order = False
        # Node mode B (True, a 1.36 kubelet): the API server passes WebSockets through, and a
        # kubelet restart closes them. Mode A (False, every node before 1.36): the API
        # server converts SPDY-over-WebSocket to SPDY itself and keeps the client's
        # WebSocket after its side to a restarted kubelet died (see restart_kubelet).
        self.websocket_passthrough = True
        self._upgraded: dict[str, set[asyncio.Transport]] = {}  # node -> connections
        self._orphans: dict[asyncio.Transport, Callable[[], None]] = {}  # mode A tunnels
        self.bookmark_interval = bookmark_interval
        self._own_workdir = workdir is None
        self._workdir = workdir
        self._kubeconfig_override = kubeconfig_path
        self.store = Store(history=watch_history)
        self.tokens = Tokens()
        self.events = EventRecorder(self.store)
        self.pki: SandboxPKI | None = None
        self.backends = BackendPool(host="127.0.0.1", cluster=name)
        self._runtime: dict[tuple[str, str], PodRuntime] = {}
        self._backend_addrs: dict[tuple[str, str, int], tuple[str, int]] = {}
        self._backend_lock = asyncio.Lock()
        self.unreachable_nodes: set[str] = set()  # see set_kubelet_reachable
        self._tasks: set[asyncio.Task[None]] = set()
        self._rollouts: dict[tuple[str, str, str], asyncio.Task[None]] = {}
        self._changed = asyncio.Event()
        self._syncing = False
        self._dirty: set[str] = set()
        self._ip_counter = 0
        self._svc_ip_counter = 0
        self._slice_names: dict[tuple[str, str, tuple[Any, ...]], str] = {}
        self._ssl: ssl.SSLContext | None = None
        self._runner: web.AppRunner | None = None
        self._site: web.TCPSite | None = None
        self._started = False
        self.url = ""
        self.kubeconfig_path = Path()
        self.ca_path = Path()

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def _notify(self) -> None:
        """Wake everything waiting for the cluster to change (see `_wait_until`)."""
        self._changed.set()
        self._changed = asyncio.Event()

    async def _wait_until(self, pred: Callable[[], bool], within: float) -> bool:
        async def loop() -> None:
            while not pred():
                await self._changed.wait()

        try:
            await asyncio.wait_for(loop(), within)
        except TimeoutError:
            return False
        return True

    def _pod_ready(self, pod: Obj) -> bool:
        for c in pod.get("status", {}).get("conditions", []):
            if c["type"] == "Ready":
                return bool(c["status"] == "True")
        return False

    def _sync(self, ns: str) -> None:
        """Run the controllers for `ns`: implemented by `controllers.Controllers`."""
        raise NotImplementedError

    def _owned(self, resource: str, ns: str, owner: Obj) -> list[Obj]:
        uid = owner["metadata"]["uid"]
        return [
            o
            for o in self.store.list(resource, ns)
            if any(r.get("uid") == uid for r in o["metadata"].get("ownerReferences", []))
        ]
