"""Pod objects over their life: created (scheduled onto a node, events), turning Ready,
flipped by readiness, terminating and removed.
"""

from __future__ import annotations

import asyncio
import copy

from portfwd.sandbox.kubelet import Kubelet
from portfwd.sandbox.manifests import (
    NODES,
    containers_json,
    owner_ref,
    pod_status,
)
from portfwd.sandbox.state import PodRuntime
from portfwd.sandbox.store import Obj, now_rfc3339
from portfwd.sandbox.topology import (
    ContainerSpec,
    PortSpec,
)


class Pods(Kubelet):
    """Pod lifecycle on top of the kubelet."""

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

    def _remove_pod(self, ns: str, name: str) -> Obj | None:
        self._drop_pod_connections(ns, name)
        self._runtime.pop((ns, name), None)
        return self.store.delete("pods", ns, name)
