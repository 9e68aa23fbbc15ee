"""What the topology puts in a cluster at start-up: nodes, namespaces, services, workloads."""

from __future__ import annotations

from portfwd.sandbox.controllers import Controllers
from portfwd.sandbox.manifests import (
    NODES,
    containers_json,
    node_manifest,
    service_manifest,
)
from portfwd.sandbox.store import Obj
from portfwd.sandbox.topology import (
    ServiceSpec,
    WorkloadSpec,
)


class Seeding(Controllers):
    """Seeds a cluster from its topology."""

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
