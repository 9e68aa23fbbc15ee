"""SandboxCluster: the API server, its controllers and the fake kubelet, in one object.

Controllers are synchronous reconcilers run right after each mutation (so a caller sees a
consistent cluster when its call returns) plus a few owned asyncio tasks for what takes time
in a real cluster: a new pod turning Ready, a terminating pod going away, a rolling update.
There is no polling loop anywhere: tasks sleep for a known delay or wait for an event.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import datetime as dt
import shutil
import ssl
import tempfile
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

from aiohttp import web

from portfwd.sandbox.auth import Tokens
from portfwd.sandbox.backends import BackendPool
from portfwd.sandbox.events import EventRecorder
from portfwd.sandbox.kubeconfig import write_kubeconfig
from portfwd.sandbox.manifests import (
    NODES,
    containers_json,
    deep_merge,
    node_manifest,
    owner_ref,
    pod_status,
    random_suffix,
    service_manifest,
    template_hash,
)
from portfwd.sandbox.pki import (
    SandboxPKI,
    backend_ssl_context,
    generate_pki,
    server_ssl_context,
)
from portfwd.sandbox.selectors import selector_matches
from portfwd.sandbox.store import Obj, Store, now_rfc3339
from portfwd.sandbox.topology import (
    BUILTIN_BACKENDS,
    ContainerSpec,
    PortSpec,
    ServiceSpec,
    Topology,
    WorkloadSpec,
    load_topology,
)

REFUSED = "connect: connection refused"


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
    conns: set[asyncio.StreamWriter] = field(default_factory=set)


class SandboxCluster:
    """A local Kubernetes API server subset with controllers and real TCP backends."""

    def __init__(
        self,
        topology: Path | dict[str, Any] | None = None,
        *,
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
        self._upgraded: dict[str, set[asyncio.Transport]] = {}  # node -> connections
        self.bookmark_interval = bookmark_interval
        self._own_workdir = workdir is None
        self._workdir = workdir
        self._kubeconfig_override = kubeconfig_path
        self.store = Store(history=watch_history)
        self.tokens = Tokens()
        self.events = EventRecorder(self.store)
        self.pki: SandboxPKI | None = None
        self.backends = BackendPool(host="127.0.0.1")
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

    # -- lifecycle -----------------------------------------------------------------------
    async def __aenter__(self) -> SandboxCluster:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    @property
    def workdir(self) -> Path:
        assert self._workdir is not None
        return self._workdir

    async def start(self) -> None:
        if self._started:
            return
        self.topology = await asyncio.to_thread(load_topology, self._topology_source)
        try:
            if self._workdir is None:
                self._workdir = Path(
                    await asyncio.to_thread(tempfile.mkdtemp, prefix="portfwd-sandbox-")
                )
            self._workdir.mkdir(parents=True, exist_ok=True)
            self.pki = await asyncio.to_thread(generate_pki)
            self._ssl = await asyncio.to_thread(server_ssl_context, self.pki, self.workdir)
            self.backends.tls = await asyncio.to_thread(backend_ssl_context, self.pki, self.workdir)
            self.ca_path = self.workdir / "ca.crt"
            await asyncio.to_thread(self.ca_path.write_bytes, self.pki.ca.cert_pem)
            self._seed()
            self.store.compact()
            self._started = True
            await self.start_api()
            self.kubeconfig_path = self._kubeconfig_override or (self.workdir / "kubeconfig")
            await asyncio.to_thread(
                write_kubeconfig, self.kubeconfig_path, self.url, self.pki, self.tokens
            )
        except BaseException:
            self._started = True  # so stop() releases whatever was set up
            await self.stop()
            raise

    async def stop(self) -> None:
        if not self._started:
            return
        self._started = False
        await self.stop_api()
        # A cancelled rollout re-syncs on its way out and may spawn (then-cancelled) tasks.
        while self._tasks:
            tasks = list(self._tasks)
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            self._tasks.difference_update(tasks)
        for rt in self._runtime.values():
            for w in list(rt.conns):
                w.close()
        await self.backends.stop()
        if self._own_workdir and self._workdir is not None:
            await asyncio.to_thread(shutil.rmtree, self._workdir, True)
            self._workdir = None

    async def start_api(self) -> None:
        """Listen (again) on the same port; the cluster state is untouched."""
        if self._runner is not None:
            return
        from portfwd.sandbox.api import build_app
        from portfwd.sandbox.requestlog import ServerLog

        # ServerLog: a request aiohttp cannot parse is one log line, not a traceback.
        runner = web.AppRunner(
            build_app(self), access_log=None, shutdown_timeout=0.5, logger=ServerLog()
        )
        await runner.setup()
        site = web.TCPSite(runner, self.host, self.port, ssl_context=self._ssl)
        try:
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self.port = int(runner.addresses[0][1])
        host = f"[{self.host}]" if ":" in self.host else self.host
        self.url = f"https://{host}:{self.port}"
        self._runner, self._site = runner, site

    async def stop_api(self) -> None:
        """Stop listening and drop every API connection (watches, port-forwards)."""
        runner, self._runner, self._site = self._runner, None, None
        if runner is None:
            return
        self.store.close_watchers()
        await runner.cleanup()

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

    # -- public controls (tests, demo) ----------------------------------------------------
    async def set_pod_ready(self, ns: str, pod: str, ready: bool) -> None:
        """Readiness as a probe would flip it.

        ready=True also heals a pod that is not running (CrashLoopBackOff, ContainerCreating,
        Pending: scheduled onto a node first); ready=False makes a running pod NotReady.
        A terminating pod is left alone.
        """
        rt = self._runtime.get((ns, pod))
        obj = self.store.get("pods", ns, pod)
        if rt is None or obj is None:
            raise KeyError(f"no pod {ns}/{pod}")
        if rt.state == "Terminating" or obj["metadata"].get("deletionTimestamp"):
            return
        was = rt.state
        if ready:
            rt.state = "Running"
        elif rt.state == "Running":
            rt.state = "NotReady"
        if rt.state == was:
            return
        if was == "Pending":
            node, node_ip, _ = self._alloc_ip()
            rt.node, rt.node_ip = node, node_ip
            new = copy.deepcopy(obj)
            new["spec"]["nodeName"] = node
            self.store.update("pods", new)
            obj = new
            self.events.record(
                obj,
                "Scheduled",
                f"Successfully assigned {ns}/{pod} to {node}",
                component="default-scheduler",
            )
        self._write_pod_status(ns, pod)
        cur = self.store.get("pods", ns, pod)
        if cur is not None and (rt.state == "NotReady" or was in ("ContainerCreating", "Pending")):
            self._record_pod_state(cur, rt)
        self._sync(ns)

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

    async def delete_pod(self, ns: str, name: str) -> None:
        if self.store.get("pods", ns, name) is None:
            raise KeyError(f"no pod {ns}/{name}")
        self.terminate_pod(ns, name)

    async def delete_object(self, resource: str, ns: str, name: str) -> None:
        """Delete a pod, service, deployment or statefulset (cascading to its pods)."""
        if self.delete(resource, ns, name) is None:
            raise KeyError(f"no {resource} {ns}/{name}")

    def delete(self, resource: str, ns: str, name: str) -> Obj | None:
        """What DELETE does; returns the object's last state (None: not found)."""
        obj = self.store.get(resource, ns, name)
        if obj is None:
            return None
        if resource == "pods":
            return self.terminate_pod(ns, name)
        if resource not in ("services", "deployments", "statefulsets"):
            raise ValueError(f"cannot delete {resource}")
        task = self._rollouts.pop((resource, ns, name), None)
        if task is not None:
            task.cancel()
        owned_pods: list[Obj] = []
        if resource == "deployments":
            for rs in self._owned("replicasets", ns, obj):
                owned_pods += self._owned("pods", ns, rs)
                self.store.delete("replicasets", ns, rs["metadata"]["name"])
        elif resource == "statefulsets":
            owned_pods = self._owned("pods", ns, obj)
        last = self.store.delete(resource, ns, name)
        for pod in owned_pods:
            self.terminate_pod(ns, pod["metadata"]["name"])
        self._sync(ns)
        return last

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
        return "\n".join(lines) + "\n", None

    def pod_names(self, ns: str, labels: dict[str, str] | None = None) -> list[str]:
        """Names of the live (not terminating) pods in `ns` matching all `labels`."""
        out = []
        for pod in self.store.list("pods", ns):
            meta = pod["metadata"]
            if meta.get("deletionTimestamp"):
                continue
            if labels and not all(meta.get("labels", {}).get(k) == v for k, v in labels.items()):
                continue
            out.append(meta["name"])
        return out

    def get_object(self, resource: str, ns: str | None, name: str) -> dict[str, Any] | None:
        obj = self.store.get(resource, ns, name)
        return copy.deepcopy(obj) if obj is not None else None

    async def wait_for(self, pred: Callable[[], bool], within: float = 10.0) -> bool:
        """Wait until `pred()` holds after some cluster change (tests); False on timeout."""
        return await self._wait_until(pred, within)

    async def rollout_restart(self, ns: str, name: str, resource: str = "deployments") -> None:
        """What `kubectl rollout restart` does: stamp the pod template, which starts a rollout.

        The stamp has microseconds (kubectl's has seconds), so two restarts in one second
        are two rollouts.
        """
        if resource not in ("deployments", "statefulsets"):
            raise ValueError(f"cannot restart {resource}")
        if self.store.get(resource, ns, name) is None:
            raise KeyError(f"no {resource} {ns}/{name}")
        stamp = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        annotations = {"kubectl.kubernetes.io/restartedAt": stamp}
        patch: Obj = {"spec": {"template": {"metadata": {"annotations": annotations}}}}
        self.apply_patch(resource, ns, name, patch, strategic=True)

    async def wait_rollout(
        self, ns: str, name: str, within: float = 60.0, resource: str = "deployments"
    ) -> bool:
        """Wait until the rollout is complete: every replica from the current template and
        Ready, no other pod left (terminating ones included). False on timeout."""
        return await self._wait_until(lambda: self._rollout_complete(resource, ns, name), within)

    def _rollout_complete(self, resource: str, ns: str, name: str) -> bool:
        obj = self.store.get(resource, ns, name)
        if obj is None or (resource, ns, name) in self._rollouts:
            return False
        want = int(obj["spec"].get("replicas", 1))
        if resource == "deployments":
            cur = self._current_rs(ns, obj)
            if cur is None:
                return False
            pods = [
                p for rs in self._owned("replicasets", ns, obj) for p in self._owned("pods", ns, rs)
            ]
            cur_uid = cur["metadata"]["uid"]
            current = [
                p
                for p in pods
                if any(r.get("uid") == cur_uid for r in p["metadata"].get("ownerReferences", []))
            ]
        else:
            pods = self._owned("pods", ns, obj)
            revision = f"{name}-{template_hash(obj['spec']['template'])}"
            current = [
                p
                for p in pods
                if p["metadata"]["labels"].get("controller-revision-hash") == revision
            ]
        return (
            len(pods) == len(current) == want
            and not any(p["metadata"].get("deletionTimestamp") for p in pods)
            and all(self._pod_ready(p) for p in pods)
        )

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

    # -- seeding --------------------------------------------------------------------------
    def _seed(self) -> None:
        for i, (node, ip) in enumerate(NODES):
            self.store.create("nodes", node_manifest(node, ip, i))
        for ns in self.topology.namespaces:
            if self.store.get("namespaces", None, ns.name) is None:
                self._create_namespace(ns.name)
            for svc in ns.services:
                self._create_service(ns.name, svc)
            for wl in ns.workloads:
                self._create_workload(ns.name, wl)
            for pod in ns.pods:
                self._create_pod(ns.name, pod.name, pod.labels, pod.containers, None, pod.state, {})
            self._sync(ns.name)
        for name in ("default", "kube-system"):
            if self.store.get("namespaces", None, name) is None:
                self._create_namespace(name)

    def _create_namespace(self, name: str) -> None:
        self.store.create(
            "namespaces",
            {
                "metadata": {"name": name, "labels": {"kubernetes.io/metadata.name": name}},
                "spec": {"finalizers": ["kubernetes"]},
                "status": {"phase": "Active"},
            },
        )

    def _create_service(self, ns: str, svc: ServiceSpec) -> None:
        if svc.headless:
            ip = "None"
        else:
            self._svc_ip_counter += 1
            n = self._svc_ip_counter + 10
            ip = f"10.96.{n // 250}.{n % 250 + 1}"
        ports = []
        for p in svc.ports:
            port: Obj = {}
            if p.name:
                port["name"] = p.name
            port.update({"protocol": p.protocol, "port": p.port, "targetPort": p.target_port})
            ports.append(port)
        self.store.create(
            "services", service_manifest(ns, svc.name, svc.selector, ports, ip, svc.type)
        )

    def _pod_template(self, wl: WorkloadSpec) -> Obj:
        return {
            "metadata": {"labels": dict(wl.labels)},
            "spec": {
                "containers": containers_json(wl.containers),
                "restartPolicy": "Always",
                "terminationGracePeriodSeconds": 30,
                "dnsPolicy": "ClusterFirst",
                "schedulerName": "default-scheduler",
            },
        }

    def _create_workload(self, ns: str, wl: WorkloadSpec) -> None:
        spec: Obj = {
            "replicas": wl.replicas,
            "selector": {"matchLabels": dict(wl.labels)},
            "template": self._pod_template(wl),
        }
        if wl.kind == "deployment":
            spec.update(
                {
                    "strategy": {
                        "type": "RollingUpdate",
                        "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"},
                    },
                    "revisionHistoryLimit": 10,
                    "progressDeadlineSeconds": 600,
                }
            )
            resource = "deployments"
        else:
            spec.update(
                {
                    "serviceName": wl.service_name,
                    "podManagementPolicy": "OrderedReady",
                    "updateStrategy": {
                        "type": "RollingUpdate",
                        "rollingUpdate": {"partition": 0},
                    },
                    "revisionHistoryLimit": 10,
                }
            )
            resource = "statefulsets"
        obj = self.store.create(
            resource,
            {
                "metadata": {
                    "name": wl.name,
                    "namespace": ns,
                    "labels": dict(wl.labels),
                    "generation": 1,
                    "annotations": {"deployment.kubernetes.io/revision": "1"}
                    if wl.kind == "deployment"
                    else {},
                },
                "spec": spec,
                "status": {},
            },
        )
        states = list(wl.pod_states)
        if wl.kind == "deployment":
            rs = self._ensure_replicaset(ns, obj, wl.replicas, revision=1)
            for i in range(wl.replicas):
                state = states[i] if i < len(states) else "Running"
                self._create_rs_pod(ns, rs, state)
        else:
            for i in range(wl.replicas):
                state = states[i] if i < len(states) else "Running"
                self._create_sts_pod(ns, obj, i, state)

    # -- pods -----------------------------------------------------------------------------
    def _alloc_ip(self) -> tuple[str, str, str]:
        n = self._ip_counter
        self._ip_counter += 1
        node, node_ip = NODES[n % len(NODES)]
        idx = n // len(NODES)
        return node, node_ip, f"10.244.{n % len(NODES) + 1}.{idx % 250 + 2}"

    def _create_pod(
        self,
        ns: str,
        name: str,
        labels: dict[str, str],
        containers: tuple[ContainerSpec, ...] | list[Obj],
        owner: Obj | None,
        state: str,
        extra_spec: Obj,
    ) -> Obj:
        node, node_ip, ip = self._alloc_ip()
        cjson = (
            copy.deepcopy(containers)
            if isinstance(containers, list)
            else containers_json(containers)
        )
        ports: dict[int, PortSpec] = {}
        for c in cjson:
            for p in c.get("ports", []):
                ports.setdefault(int(p["containerPort"]), self._port_backend(ns, owner, name, p))
        for hidden in self._topology_ports(ns, owner, name, hidden=True):
            ports.setdefault(hidden.container_port, hidden)
        started = now_rfc3339()
        rt = PodRuntime(
            state=state,
            node=None if state == "Pending" else node,
            node_ip=None if state == "Pending" else node_ip,
            ip=ip,
            started=started,
            ports=ports,
        )
        self._runtime[(ns, name)] = rt
        spec: Obj = {
            "containers": cjson,
            "restartPolicy": "Always",
            "terminationGracePeriodSeconds": 30,
            "dnsPolicy": "ClusterFirst",
            "serviceAccountName": "default",
            "schedulerName": "default-scheduler",
            "enableServiceLinks": True,
        }
        spec.update(extra_spec)
        if rt.node:
            spec["nodeName"] = rt.node
        meta: Obj = {"name": name, "namespace": ns, "labels": dict(labels)}
        if owner is not None:
            if owner["kind"] == "ReplicaSet":
                meta["generateName"] = owner["metadata"]["name"] + "-"
            meta["ownerReferences"] = [owner_ref(owner)]
        pod = {"metadata": meta, "spec": spec, "status": self._status(rt, cjson)}
        created = self.store.create("pods", pod)
        if owner is not None:
            self.events.record(
                owner,
                "SuccessfulCreate",
                f"Created pod: {name}",
                component=f"{owner['kind'].lower()}-controller",
            )
        self._record_pod_state(created, rt, scheduled=True)
        return created

    def _record_pod_state(self, pod: Obj, rt: PodRuntime, *, scheduled: bool = False) -> None:
        """The events a kubelet / scheduler would emit on reaching `rt.state`."""
        ns, name = pod["metadata"]["namespace"], pod["metadata"]["name"]
        if rt.state == "Pending":
            self.events.record(
                pod,
                "FailedScheduling",
                pod["status"]["conditions"][0]["message"],
                warning=True,
                component="default-scheduler",
            )
            return
        if scheduled:
            self.events.record(
                pod,
                "Scheduled",
                f"Successfully assigned {ns}/{name} to {rt.node}",
                component="default-scheduler",
            )
        if rt.state in ("Running", "NotReady", "CrashLoopBackOff"):
            for c in pod["spec"]["containers"]:
                self.events.record(
                    pod,
                    "Pulled",
                    f'Container image "{c["image"]}" already present on machine',
                    host=rt.node,
                )
                self.events.record(pod, "Created", f"Created container: {c['name']}", host=rt.node)
                self.events.record(pod, "Started", f"Started container {c['name']}", host=rt.node)
        if rt.state == "NotReady":
            self.events.record(
                pod,
                "Unhealthy",
                "Readiness probe failed: HTTP probe failed with statuscode: 503",
                warning=True,
                host=rt.node,
            )
        if rt.state == "CrashLoopBackOff":
            c = pod["spec"]["containers"][0]
            self.events.record(
                pod,
                "BackOff",
                f"Back-off restarting failed container {c['name']} in pod "
                f"{name}_{ns}({pod['metadata']['uid']})",
                warning=True,
                host=rt.node,
            )

    def _port_backend(self, ns: str, owner: Obj | None, pod: str, port: Obj) -> PortSpec:
        """The topology's backend for a container port (looked up through the owner)."""
        number = int(port["containerPort"])
        for spec in self._topology_ports(ns, owner, pod):
            if spec.container_port == number:
                return spec
        return PortSpec(number, port.get("name"), port.get("protocol", "TCP"), None)

    def _topology_ports(
        self, ns: str, owner: Obj | None, pod: str, *, hidden: bool = False
    ) -> list[PortSpec]:
        containers = self._topology_containers(ns, owner, pod)
        return [p for c in containers for p in (c.hidden_ports if hidden else c.ports)]

    def _topology_containers(
        self, ns: str, owner: Obj | None, pod: str
    ) -> tuple[ContainerSpec, ...]:
        for nss in self.topology.namespaces:
            if nss.name != ns:
                continue
            if owner is None:
                for p in nss.pods:
                    if p.name == pod:
                        return p.containers
                return ()
            wl_name = owner["metadata"]["name"]
            if owner["kind"] == "ReplicaSet":
                refs = owner["metadata"].get("ownerReferences", [])
                wl_name = refs[0]["name"] if refs else wl_name
            for wl in nss.workloads:
                if wl.name == wl_name:
                    return wl.containers
        return ()

    def _status(self, rt: PodRuntime, containers: list[Obj]) -> Obj:
        restarts = 7 if rt.state == "CrashLoopBackOff" else 0
        return pod_status(
            rt.state,
            containers,
            node_ip=rt.node_ip,
            pod_ip=rt.ip if rt.node else None,
            started=rt.started,
            restarts=restarts,
        )

    def _write_pod_status(self, ns: str, name: str) -> None:
        pod = self.store.get("pods", ns, name)
        rt = self._runtime.get((ns, name))
        if pod is None or rt is None:
            return
        new = copy.deepcopy(pod)
        new["status"] = self._status(rt, new["spec"]["containers"])
        self.store.update("pods", new)

    def _pod_ready(self, pod: Obj) -> bool:
        for c in pod.get("status", {}).get("conditions", []):
            if c["type"] == "Ready":
                return bool(c["status"] == "True")
        return False

    def _start_pod_later(self, ns: str, name: str, uid: str) -> None:
        """A new pod: ContainerCreating now, Running and Ready after the delay."""

        async def later() -> None:
            await asyncio.sleep(self.replacement_ready_delay)
            pod = self.store.get("pods", ns, name)
            rt = self._runtime.get((ns, name))
            if pod is None or rt is None or pod["metadata"]["uid"] != uid:
                return
            if rt.state == "ContainerCreating":
                rt.state = "Running"
                self._write_pod_status(ns, name)
                self._record_pod_state(pod, rt)
                self._sync(ns)

        self._spawn(later())

    def terminate_pod(self, ns: str, name: str) -> Obj | None:
        """Graceful delete: Terminating now, gone after termination_grace.

        Its connections drop now, or at the end with terminating_keeps_connections.
        """
        pod = self.store.get("pods", ns, name)
        rt = self._runtime.get((ns, name))
        if pod is None:
            return None
        if pod["metadata"].get("deletionTimestamp"):
            return pod
        if not self.terminating_keeps_connections:
            self._drop_pod_connections(ns, name)
        uid = pod["metadata"]["uid"]
        if rt is not None and rt.state in ("Running", "NotReady"):
            for c in pod["spec"]["containers"]:
                self.events.record(pod, "Killing", f"Stopping container {c['name']}", host=rt.node)
        if self.termination_grace <= 0 or rt is None:
            last = self._remove_pod(ns, name)
            self._sync(ns)
            return last
        rt.serving = self._pod_ready(pod) if rt.state in ("Running", "NotReady") else False
        rt.state = "Terminating" if rt.state in ("Running", "NotReady") else rt.state
        new = copy.deepcopy(pod)
        new["metadata"]["deletionTimestamp"] = now_rfc3339()
        new["metadata"]["deletionGracePeriodSeconds"] = 30
        new["status"] = self._status(rt, new["spec"]["containers"])
        result = self.store.update("pods", new)
        self._sync(ns)

        async def later() -> None:
            await asyncio.sleep(self.termination_grace)
            cur = self.store.get("pods", ns, name)
            if cur is not None and cur["metadata"]["uid"] == uid:
                self._remove_pod(ns, name)
                self._sync(ns)

        self._spawn(later())
        return result

    def force_delete_pod(self, ns: str, name: str) -> Obj | None:
        """`--grace-period=0 --force`: gone at once."""
        last = self._remove_pod(ns, name)
        self._sync(ns)
        return last

    def resync(self, ns: str) -> None:
        """Re-run the controllers for `ns` (after an API write, e.g. a label change)."""
        self._sync(ns)

    def _remove_pod(self, ns: str, name: str) -> Obj | None:
        self._drop_pod_connections(ns, name)
        self._runtime.pop((ns, name), None)
        return self.store.delete("pods", ns, name)

    # -- replica sets / deployments -------------------------------------------------------
    def _ensure_replicaset(self, ns: str, dep: Obj, replicas: int, revision: int) -> Obj:
        template = copy.deepcopy(dep["spec"]["template"])
        h = template_hash(template)
        name = f"{dep['metadata']['name']}-{h}"
        existing = self.store.get("replicasets", ns, name)
        if existing is not None:
            return existing
        labels = {**dep["spec"]["selector"]["matchLabels"], "pod-template-hash": h}
        template.setdefault("metadata", {})["labels"] = {
            **template["metadata"].get("labels", {}),
            "pod-template-hash": h,
        }
        return self.store.create(
            "replicasets",
            {
                "metadata": {
                    "name": name,
                    "namespace": ns,
                    "labels": labels,
                    "annotations": {
                        "deployment.kubernetes.io/desired-replicas": str(
                            dep["spec"].get("replicas", 1)
                        ),
                        "deployment.kubernetes.io/max-replicas": str(
                            dep["spec"].get("replicas", 1) + 1
                        ),
                        "deployment.kubernetes.io/revision": str(revision),
                    },
                    "ownerReferences": [owner_ref(dep)],
                    "generation": 1,
                },
                "spec": {
                    "replicas": replicas,
                    "selector": {"matchLabels": labels},
                    "template": template,
                },
                "status": {"replicas": 0, "observedGeneration": 1},
            },
        )

    def _owned(self, resource: str, ns: str, owner: Obj) -> list[Obj]:
        uid = owner["metadata"]["uid"]
        return [
            o
            for o in self.store.list(resource, ns)
            if any(r.get("uid") == uid for r in o["metadata"].get("ownerReferences", []))
        ]

    def _create_rs_pod(self, ns: str, rs: Obj, state: str = "ContainerCreating") -> Obj:
        base = rs["metadata"]["name"]
        while True:
            name = f"{base}-{random_suffix()}"
            if self.store.get("pods", ns, name) is None:
                break
        tmpl = rs["spec"]["template"]
        pod = self._create_pod(
            ns,
            name,
            tmpl["metadata"].get("labels", {}),
            tmpl["spec"]["containers"],
            rs,
            state,
            {},
        )
        if state == "ContainerCreating":
            self._start_pod_later(ns, name, pod["metadata"]["uid"])
        return pod

    def _reconcile_rs(self, ns: str, rs: Obj) -> list[str]:
        """Create or delete pods so the ReplicaSet has spec.replicas live ones."""
        live = [
            p for p in self._owned("pods", ns, rs) if not p["metadata"].get("deletionTimestamp")
        ]
        want = int(rs["spec"].get("replicas", 0))
        created = []
        for _ in range(want - len(live)):
            created.append(self._create_rs_pod(ns, rs)["metadata"]["name"])
        if len(live) > want:
            # Like the ReplicaSet controller: unscheduled, then not ready, then newest first.
            def rank(p: Obj) -> tuple[int, int]:
                return (
                    0 if not p["spec"].get("nodeName") else 1,
                    0 if not self._pod_ready(p) else 1,
                )

            newest_first = sorted(
                live, key=lambda p: p["metadata"]["creationTimestamp"], reverse=True
            )
            for p in sorted(newest_first, key=rank)[: len(live) - want]:
                self.terminate_pod(ns, p["metadata"]["name"])
        return created

    def _set_rs_replicas(self, ns: str, rs_name: str, replicas: int) -> list[str]:
        rs = self.store.get("replicasets", ns, rs_name)
        if rs is None:
            return []
        new = copy.deepcopy(rs)
        old_count = int(new["spec"]["replicas"])
        if old_count != replicas:
            refs = rs["metadata"].get("ownerReferences", [])
            dep = self.store.get("deployments", ns, refs[0]["name"]) if refs else None
            if dep is not None:
                self.events.record(
                    dep,
                    "ScalingReplicaSet",
                    f"Scaled {'up' if replicas > old_count else 'down'} replica set {rs_name} "
                    f"from {old_count} to {replicas}",
                    component="deployment-controller",
                )
            new["spec"]["replicas"] = replicas
            new["metadata"]["generation"] = new["metadata"].get("generation", 1) + 1
            new["status"]["observedGeneration"] = new["metadata"]["generation"]
            rs = self.store.update("replicasets", new)
        created = self._reconcile_rs(ns, rs)
        self._sync(ns)
        return created

    def workload_changed(self, resource: str, ns: str, name: str) -> None:
        """After a PATCH/PUT of a deployment or statefulset (or its scale)."""
        obj = self.store.get(resource, ns, name)
        if obj is None:
            return
        key = (resource, ns, name)
        running = self._rollouts.get(key)
        if resource == "deployments":
            rs = self._current_rs(ns, obj)
            if rs is None or running is not None or self._old_rs_with_pods(ns, obj, rs):
                if running is not None:
                    running.cancel()
                self._rollouts[key] = self._spawn(self._deployment_rollout(ns, name))
            else:
                self._set_rs_replicas(ns, rs["metadata"]["name"], int(obj["spec"]["replicas"]))
        else:
            if running is not None:
                running.cancel()
            self._rollouts[key] = self._spawn(self._statefulset_rollout(ns, name))
        self._sync(ns)

    def _current_rs(self, ns: str, dep: Obj) -> Obj | None:
        h = template_hash(dep["spec"]["template"])
        return self.store.get("replicasets", ns, f"{dep['metadata']['name']}-{h}")

    def _old_rs_with_pods(self, ns: str, dep: Obj, cur: Obj) -> list[Obj]:
        return [
            rs
            for rs in self._owned("replicasets", ns, dep)
            if rs["metadata"]["name"] != cur["metadata"]["name"] and rs["spec"]["replicas"] > 0
        ]

    async def _wait_ready_or_gone(self, ns: str, names: list[str]) -> None:
        def done() -> bool:
            for n in names:
                p = self.store.get("pods", ns, n)
                if p is not None and not self._pod_ready(p):
                    return False
            return True

        await self._wait_until(done, max(10.0, 20 * self.replacement_ready_delay))

    async def _deployment_rollout(self, ns: str, name: str) -> None:
        """Rolling update, one pod at a time: a new pod Ready before an old one goes."""
        key = ("deployments", ns, name)
        try:
            while True:
                dep = self.store.get("deployments", ns, name)
                if dep is None:
                    return
                cur = self._current_rs(ns, dep)
                if cur is None:
                    revisions = [
                        int(
                            rs["metadata"]["annotations"].get(
                                "deployment.kubernetes.io/revision", 0
                            )
                        )
                        for rs in self._owned("replicasets", ns, dep)
                    ]
                    revision = max(revisions, default=0) + 1
                    cur = self._ensure_replicaset(ns, dep, 0, revision)
                    new_dep = copy.deepcopy(dep)
                    new_dep["metadata"].setdefault("annotations", {})[
                        "deployment.kubernetes.io/revision"
                    ] = str(revision)
                    self.store.update("deployments", new_dep)
                want = int(dep["spec"].get("replicas", 1))
                have = int(cur["spec"]["replicas"])
                olds = self._old_rs_with_pods(ns, dep, cur)
                cur_name = cur["metadata"]["name"]
                if have < want:
                    created = self._set_rs_replicas(ns, cur_name, have + 1)
                    await self._wait_ready_or_gone(ns, created)
                    if olds:
                        old = olds[0]
                        self._set_rs_replicas(
                            ns, old["metadata"]["name"], int(old["spec"]["replicas"]) - 1
                        )
                elif have > want:
                    self._set_rs_replicas(ns, cur_name, want)
                elif olds:
                    old = olds[0]
                    self._set_rs_replicas(
                        ns, old["metadata"]["name"], int(old["spec"]["replicas"]) - 1
                    )
                else:
                    self._sync(ns)
                    return
        finally:
            if self._rollouts.get(key) is asyncio.current_task():
                del self._rollouts[key]
                self._sync(ns)

    # -- statefulsets ---------------------------------------------------------------------
    def _create_sts_pod(self, ns: str, sts: Obj, ordinal: int, state: str) -> Obj:
        name = f"{sts['metadata']['name']}-{ordinal}"
        tmpl = sts["spec"]["template"]
        revision = f"{sts['metadata']['name']}-{template_hash(tmpl)}"
        labels = {
            **tmpl["metadata"].get("labels", {}),
            "controller-revision-hash": revision,
            "statefulset.kubernetes.io/pod-name": name,
            "apps.kubernetes.io/pod-index": str(ordinal),
        }
        pod = self._create_pod(
            ns,
            name,
            labels,
            tmpl["spec"]["containers"],
            sts,
            state,
            {"hostname": name, "subdomain": sts["spec"].get("serviceName", "")},
        )
        if state == "ContainerCreating":
            self._start_pod_later(ns, name, pod["metadata"]["uid"])
        return pod

    def _reconcile_sts(self, ns: str, sts: Obj) -> None:
        want = int(sts["spec"].get("replicas", 1))
        base = sts["metadata"]["name"]
        for i in range(want):
            if self.store.get("pods", ns, f"{base}-{i}") is None:
                self._create_sts_pod(ns, sts, i, "ContainerCreating")
        for p in self._owned("pods", ns, sts):
            ordinal = p["metadata"]["name"].rsplit("-", 1)[-1]
            if ordinal.isdigit() and int(ordinal) >= want:
                self.terminate_pod(ns, p["metadata"]["name"])

    async def _statefulset_rollout(self, ns: str, name: str) -> None:
        """Scale, then replace out-of-date pods from the highest ordinal down."""
        key = ("statefulsets", ns, name)
        try:
            sts = self.store.get("statefulsets", ns, name)
            if sts is None:
                return
            self._reconcile_sts(ns, sts)
            self._sync(ns)
            while True:
                sts = self.store.get("statefulsets", ns, name)
                if sts is None:
                    return
                revision = f"{name}-{template_hash(sts['spec']['template'])}"
                stale = sorted(
                    (
                        p
                        for p in self._owned("pods", ns, sts)
                        if p["metadata"]["labels"].get("controller-revision-hash") != revision
                        and not p["metadata"].get("deletionTimestamp")
                    ),
                    key=lambda p: -int(p["metadata"]["name"].rsplit("-", 1)[-1]),
                )
                if not stale:
                    return
                victim = stale[0]["metadata"]["name"]
                old_uid = stale[0]["metadata"]["uid"]
                self.terminate_pod(ns, victim)

                def replaced(victim: str = victim, old_uid: str = old_uid) -> bool:
                    p = self.store.get("pods", ns, victim)
                    return p is not None and p["metadata"]["uid"] != old_uid and self._pod_ready(p)

                await self._wait_until(replaced, max(10.0, 20 * self.replacement_ready_delay))
        finally:
            if self._rollouts.get(key) is asyncio.current_task():
                del self._rollouts[key]
                self._sync(ns)

    # -- status + endpoint slices ---------------------------------------------------------
    def _sync(self, ns: str) -> None:
        """Bring every derived object of `ns` up to date (idempotent, cheap).

        Reconciling can terminate or create pods, which asks for another sync: instead of
        recursing, that request is noted and the outer call loops until nothing changes.
        """
        self._dirty.add(ns)
        if self._syncing:
            return
        self._syncing = True
        try:
            while self._dirty:
                self._sync_once(self._dirty.pop())
        finally:
            self._syncing = False
        self._notify()

    def _sync_once(self, ns: str) -> None:
        for sts in self.store.list("statefulsets", ns):
            self._reconcile_sts(ns, sts)
        for rs in self.store.list("replicasets", ns):
            self._reconcile_rs(ns, rs)
        for rs in self.store.list("replicasets", ns):
            self._update_rs_status(ns, rs)
        for dep in self.store.list("deployments", ns):
            self._update_deployment_status(ns, dep)
        for sts in self.store.list("statefulsets", ns):
            self._update_sts_status(ns, sts)
        self._sync_slices(ns)

    def _counts(self, pods: list[Obj]) -> tuple[int, int]:
        live = [p for p in pods if not p["metadata"].get("deletionTimestamp")]
        return len(live), sum(1 for p in live if self._pod_ready(p))

    def _update_rs_status(self, ns: str, rs: Obj) -> None:
        rs = self.store.get("replicasets", ns, rs["metadata"]["name"]) or rs
        total, ready = self._counts(self._owned("pods", ns, rs))
        new = copy.deepcopy(rs)
        new["status"] = {
            "replicas": total,
            "fullyLabeledReplicas": total,
            "readyReplicas": ready,
            "availableReplicas": ready,
            "observedGeneration": rs["metadata"].get("generation", 1),
        }
        if not ready:
            del new["status"]["readyReplicas"]
            del new["status"]["availableReplicas"]
        self.store.update("replicasets", new)

    def _update_deployment_status(self, ns: str, dep: Obj) -> None:
        dep = self.store.get("deployments", ns, dep["metadata"]["name"]) or dep
        pods: list[Obj] = []
        for rs in self._owned("replicasets", ns, dep):
            pods += self._owned("pods", ns, rs)
        total, ready = self._counts(pods)
        cur = self._current_rs(ns, dep)
        updated = self._counts(self._owned("pods", ns, cur))[0] if cur is not None else 0
        want = int(dep["spec"].get("replicas", 1))
        key = ("deployments", ns, dep["metadata"]["name"])
        rolling = key in self._rollouts
        status: Obj = {
            "observedGeneration": dep["metadata"].get("generation", 1),
            "replicas": total,
            "updatedReplicas": updated,
            "readyReplicas": ready,
            "availableReplicas": ready,
        }
        if total - ready > 0:
            status["unavailableReplicas"] = total - ready
        for k in ("readyReplicas", "availableReplicas", "updatedReplicas"):
            if not status[k]:
                del status[k]
        old_conds = {c["type"]: c for c in dep.get("status", {}).get("conditions", [])}

        def cond(kind: str, ok: bool, reason: str, message: str) -> Obj:
            prev = old_conds.get(kind)
            same = prev is not None and prev["status"] == ("True" if ok else "False")
            since = prev["lastTransitionTime"] if same and prev else now_rfc3339()
            return {
                "type": kind,
                "status": "True" if ok else "False",
                "lastUpdateTime": prev["lastUpdateTime"] if same and prev else since,
                "lastTransitionTime": since,
                "reason": reason,
                "message": message,
            }

        available = want == 0 or ready >= max(1, want - want // 4)
        name = dep["metadata"]["name"]
        cur_name = cur["metadata"]["name"] if cur is not None else name
        status["conditions"] = [
            cond(
                "Available",
                available,
                "MinimumReplicasAvailable" if available else "MinimumReplicasUnavailable",
                "Deployment has minimum availability."
                if available
                else "Deployment does not have minimum availability.",
            ),
            cond(
                "Progressing",
                True,
                "ReplicaSetUpdated" if rolling else "NewReplicaSetAvailable",
                f'ReplicaSet "{cur_name}" is progressing.'
                if rolling
                else f'ReplicaSet "{cur_name}" has successfully progressed.',
            ),
        ]
        new = copy.deepcopy(dep)
        new["status"] = status
        self.store.update("deployments", new)

    def _update_sts_status(self, ns: str, sts: Obj) -> None:
        sts = self.store.get("statefulsets", ns, sts["metadata"]["name"]) or sts
        pods = self._owned("pods", ns, sts)
        total, ready = self._counts(pods)
        revision = f"{sts['metadata']['name']}-{template_hash(sts['spec']['template'])}"
        updated = sum(
            1 for p in pods if p["metadata"]["labels"].get("controller-revision-hash") == revision
        )
        new = copy.deepcopy(sts)
        new["status"] = {
            "observedGeneration": sts["metadata"].get("generation", 1),
            "replicas": total,
            "readyReplicas": ready,
            "availableReplicas": ready,
            "currentReplicas": updated,
            "updatedReplicas": updated,
            "currentRevision": revision,
            "updateRevision": revision,
            "collisionCount": 0,
        }
        self.store.update("statefulsets", new)

    def _sync_slices(self, ns: str) -> None:
        wanted: dict[str, Obj] = {}
        for svc in self.store.list("services", ns):
            selector = svc["spec"].get("selector")
            if not selector:
                continue
            for key, slice_obj in self._slices_for(ns, svc, selector).items():
                name = self._slice_names.get(key)
                if name is None:
                    name = f"{svc['metadata']['name']}-{random_suffix()}"
                    self._slice_names[key] = name
                slice_obj["metadata"]["name"] = name
                wanted[name] = slice_obj
        for stale in self.store.list("endpointslices", ns):
            name = stale["metadata"]["name"]
            if name not in wanted:
                self.store.delete("endpointslices", ns, name)
                for k, v in list(self._slice_names.items()):
                    if v == name:
                        del self._slice_names[k]
        for name, obj in wanted.items():
            existing = self.store.get("endpointslices", ns, name)
            if existing is None:
                self.store.create("endpointslices", obj)
            else:
                new = copy.deepcopy(existing)
                new["endpoints"] = obj["endpoints"]
                new["ports"] = obj["ports"]
                self.store.update("endpointslices", new)

    def _slices_for(
        self, ns: str, svc: Obj, selector: dict[str, str]
    ) -> dict[tuple[Any, ...], Obj]:
        svc_name = svc["metadata"]["name"]
        groups: dict[tuple[Any, ...], list[Obj]] = {}
        ports_for: dict[tuple[Any, ...], list[Obj]] = {}
        for pod in self.store.list("pods", ns):
            if not selector_matches(selector, pod["metadata"].get("labels", {})):
                continue
            status = pod.get("status", {})
            if not status.get("podIP") or status.get("phase") in ("Succeeded", "Failed"):
                continue
            resolved = []
            for sp in svc["spec"]["ports"]:
                target = sp.get("targetPort", sp["port"])
                number = self._resolve_target(pod, target, sp.get("protocol", "TCP"))
                if number is None:
                    continue
                entry: Obj = {"name": sp.get("name", ""), "port": number}
                entry["protocol"] = sp.get("protocol", "TCP")
                resolved.append(entry)
            key = (ns, svc_name, tuple((p["name"], p["port"], p["protocol"]) for p in resolved))
            groups.setdefault(key, []).append(pod)
            ports_for[key] = resolved
        if not groups:
            groups[(ns, svc_name, ())] = []
            ports_for[(ns, svc_name, ())] = []
        headless = svc["spec"].get("clusterIP") == "None"
        out = {}
        for key, pods in groups.items():
            endpoints = []
            for pod in pods:
                rt = self._runtime.get((ns, pod["metadata"]["name"]))
                terminating = bool(pod["metadata"].get("deletionTimestamp"))
                ready = self._pod_ready(pod) and not terminating
                serving = ready or (terminating and rt is not None and rt.serving)
                ep: Obj = {
                    "addresses": [pod["status"]["podIP"]],
                    "conditions": {"ready": ready, "serving": serving, "terminating": terminating},
                }
                if headless and pod["spec"].get("hostname"):
                    ep["hostname"] = pod["spec"]["hostname"]
                ep["targetRef"] = {
                    "kind": "Pod",
                    "namespace": ns,
                    "name": pod["metadata"]["name"],
                    "uid": pod["metadata"]["uid"],
                }
                if pod["spec"].get("nodeName"):
                    ep["nodeName"] = pod["spec"]["nodeName"]
                endpoints.append(ep)
            out[key] = {
                "metadata": {
                    "name": "",
                    "generateName": f"{svc_name}-",
                    "namespace": ns,
                    "labels": {
                        "kubernetes.io/service-name": svc_name,
                        "endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io",
                    },
                    "ownerReferences": [
                        {
                            "apiVersion": "v1",
                            "kind": "Service",
                            "name": svc_name,
                            "uid": svc["metadata"]["uid"],
                            "controller": True,
                            "blockOwnerDeletion": True,
                        }
                    ],
                },
                "addressType": "IPv4",
                "endpoints": endpoints,
                "ports": [
                    {"name": p["name"], "protocol": p["protocol"], "port": p["port"]}
                    for p in ports_for[key]
                ],
            }
        return out

    @staticmethod
    def _resolve_target(pod: Obj, target: int | str, protocol: str) -> int | None:
        if isinstance(target, int):
            return target
        if target.isdigit():
            return int(target)
        for c in pod["spec"]["containers"]:
            for p in c.get("ports", []):
                if p.get("name") == target and p.get("protocol", "TCP") == protocol:
                    return int(p["containerPort"])
        return None

    # -- for the HTTP layer ---------------------------------------------------------------
    def apply_patch(
        self, resource: str, ns: str, name: str, patch: Obj, *, strategic: bool = False
    ) -> Obj:
        """Merge patch (or strategic merge: lists of named items merged by name)."""
        obj = self.store.get(resource, ns, name)
        if obj is None:
            raise KeyError(name)
        new = deep_merge(copy.deepcopy(obj), patch, strategic=strategic)
        if not isinstance(new.get("metadata"), dict):
            new["metadata"] = {}
        for key in ("name", "namespace", "uid", "creationTimestamp", "ownerReferences"):
            if key in obj["metadata"]:
                new["metadata"][key] = obj["metadata"][key]
            else:
                new["metadata"].pop(key, None)
        new["kind"], new["apiVersion"] = obj["kind"], obj["apiVersion"]
        new["status"] = obj.get("status", {})
        if new.get("spec") != obj.get("spec"):
            new["metadata"]["generation"] = obj["metadata"].get("generation", 1) + 1
        updated = self.store.update(resource, new)
        if resource in ("deployments", "statefulsets") and new.get("spec") != obj.get("spec"):
            self.workload_changed(resource, ns, name)
            updated = self.store.get(resource, ns, name) or updated
        return updated
