"""The EndpointSlice controller: one slice per service and port set, from the pods its
selector matches (ready / serving / terminating, as kube-proxy and kubectl read them).
"""

from __future__ import annotations

import copy
from typing import Any

from portfwd.sandbox.manifests import random_suffix
from portfwd.sandbox.pods import Pods
from portfwd.sandbox.selectors import selector_matches
from portfwd.sandbox.store import Obj


class EndpointSlices(Pods):
    """Endpoint slices derived from services and pods."""

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
