"""JSON shapes of the objects the sandbox serves, as a real cluster would show them.

Pod status is derived from a small runtime state (`Running`, `NotReady`, `CrashLoopBackOff`,
`ContainerCreating`, `Pending`, `Terminating`) so every transition produces a coherent
object: phase, conditions, containerStatuses, IPs.
"""

from __future__ import annotations

import hashlib
import json
import random
from typing import Any

from portfwd.sandbox.store import Obj, now_rfc3339
from portfwd.sandbox.topology import ContainerSpec

# kubectl's / the API server's generateName alphabet (no vowels, no look-alikes).
SAFE_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"

NODES = (("sandbox-node-1", "172.18.0.2"), ("sandbox-node-2", "172.18.0.3"))


def random_suffix(n: int = 5) -> str:
    return "".join(random.choice(SAFE_ALPHABET) for _ in range(n))


def template_hash(template: Obj) -> str:
    digest = hashlib.sha256(json.dumps(template, sort_keys=True).encode()).digest()
    return "".join(SAFE_ALPHABET[b % len(SAFE_ALPHABET)] for b in digest[:10])


def containers_json(containers: tuple[ContainerSpec, ...]) -> list[Obj]:
    out = []
    for c in containers:
        entry: Obj = {"name": c.name, "image": c.image, "imagePullPolicy": "IfNotPresent"}
        if c.ports:
            ports = []
            for p in c.ports:
                port: Obj = {}
                if p.name:
                    port["name"] = p.name
                port["containerPort"] = p.container_port
                port["protocol"] = p.protocol
                ports.append(port)
            entry["ports"] = ports
        entry["resources"] = {}
        entry["terminationMessagePath"] = "/dev/termination-log"
        entry["terminationMessagePolicy"] = "File"
        out.append(entry)
    return out


def node_manifest(name: str, ip: str, index: int) -> Obj:
    return {
        "metadata": {
            "name": name,
            "labels": {
                "kubernetes.io/hostname": name,
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": "amd64",
            },
        },
        "spec": {"podCIDR": f"10.244.{index + 1}.0/24"},
        "status": {
            "addresses": [
                {"type": "InternalIP", "address": ip},
                {"type": "Hostname", "address": name},
            ],
            "conditions": [
                {
                    "type": "Ready",
                    "status": "True",
                    "reason": "KubeletReady",
                    "message": "kubelet is posting ready status",
                    "lastHeartbeatTime": now_rfc3339(),
                    "lastTransitionTime": now_rfc3339(),
                }
            ],
            "nodeInfo": {
                "kubeletVersion": "v1.32.0-sandbox",
                "containerRuntimeVersion": "containerd://1.7.0",
                "operatingSystem": "linux",
                "architecture": "amd64",
                "osImage": "portfwd sandbox",
                "kernelVersion": "6.0.0",
            },
        },
    }


def _cond(kind: str, ok: bool, since: str, reason: str | None = None) -> Obj:
    c: Obj = {
        "type": kind,
        "status": "True" if ok else "False",
        "lastProbeTime": None,
        "lastTransitionTime": since,
    }
    if reason:
        c["reason"] = reason
    return c


def pod_status(
    state: str,
    containers: list[Obj],
    *,
    node_ip: str | None,
    pod_ip: str | None,
    started: str,
    restarts: int = 0,
) -> Obj:
    """Status for a runtime state; `Terminating` looks like Running with Ready=False."""
    now = now_rfc3339()
    if state == "Pending":
        return {
            "phase": "Pending",
            "conditions": [
                {
                    "type": "PodScheduled",
                    "status": "False",
                    "lastProbeTime": None,
                    "lastTransitionTime": started,
                    "reason": "Unschedulable",
                    "message": "0/2 nodes are available: 2 Insufficient memory. preemption: "
                    "0/2 nodes are available: 2 No preemption victims found for incoming pod.",
                }
            ],
            "qosClass": "BestEffort",
        }
    ready = state == "Running"
    running = state in ("Running", "NotReady", "Terminating")
    statuses = []
    for c in containers:
        cs: Obj = {
            "name": c["name"],
            "ready": ready,
            "restartCount": restarts,
            "image": c["image"],
            "imageID": "",
            "started": running,
        }
        if running:
            cs["state"] = {"running": {"startedAt": started}}
            cs["containerID"] = (
                "containerd://"
                + hashlib.sha256((c["name"] + started + (pod_ip or "")).encode()).hexdigest()
            )
            cs["imageID"] = c["image"] + "@sha256:" + "0" * 64
        elif state == "CrashLoopBackOff":
            cs["state"] = {
                "waiting": {
                    "reason": "CrashLoopBackOff",
                    "message": f"back-off 5m0s restarting failed container={c['name']}",
                }
            }
            cs["lastState"] = {
                "terminated": {
                    "exitCode": 1,
                    "reason": "Error",
                    "startedAt": started,
                    "finishedAt": now,
                }
            }
        else:  # ContainerCreating
            cs["state"] = {"waiting": {"reason": "ContainerCreating"}}
        statuses.append(cs)
    status: Obj = {
        "phase": "Running"
        if state in ("Running", "NotReady", "CrashLoopBackOff", "Terminating")
        else "Pending",
        "conditions": [
            _cond("PodReadyToStartContainers", state != "ContainerCreating", started),
            _cond("Initialized", True, started),
            _cond("Ready", ready, now, None if ready else "ContainersNotReady"),
            _cond("ContainersReady", ready, now, None if ready else "ContainersNotReady"),
            _cond("PodScheduled", True, started),
        ],
        "hostIP": node_ip,
        "hostIPs": [{"ip": node_ip}],
        "startTime": started,
        "containerStatuses": statuses,
        "qosClass": "BestEffort",
    }
    if pod_ip and state != "ContainerCreating":
        status["podIP"] = pod_ip
        status["podIPs"] = [{"ip": pod_ip}]
    return status


def owner_ref(obj: Obj) -> Obj:
    return {
        "apiVersion": obj["apiVersion"],
        "kind": obj["kind"],
        "name": obj["metadata"]["name"],
        "uid": obj["metadata"]["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


def service_manifest(
    ns: str,
    name: str,
    selector: dict[str, str] | None,
    ports: list[Obj],
    cluster_ip: str,
    svc_type: str,
) -> Obj:
    spec: Obj = {
        "ports": ports,
        "clusterIP": cluster_ip,
        "clusterIPs": [cluster_ip],
        "type": svc_type,
        "sessionAffinity": "None",
        "ipFamilies": ["IPv4"],
        "ipFamilyPolicy": "SingleStack",
        "internalTrafficPolicy": "Cluster",
    }
    if selector is not None:
        spec["selector"] = dict(selector)
    return {
        "metadata": {"name": name, "namespace": ns, "labels": {"app": name}},
        "spec": spec,
        "status": {"loadBalancer": {}},
    }


def scale_manifest(obj: Obj, selector: str) -> Obj:
    meta = obj["metadata"]
    return {
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {
            "name": meta["name"],
            "namespace": meta["namespace"],
            "uid": meta["uid"],
            "resourceVersion": meta["resourceVersion"],
            "creationTimestamp": meta["creationTimestamp"],
        },
        "spec": {"replicas": obj["spec"].get("replicas", 1)},
        "status": {"replicas": obj.get("status", {}).get("replicas", 0), "selector": selector},
    }


MERGE_KEYS = ("name", "containerPort", "port", "ip")


def _merge_key(items: list[Any]) -> str | None:
    """The strategic-merge key shared by every item of a list of objects, if any."""
    if not items or not all(isinstance(i, dict) for i in items):
        return None
    for key in MERGE_KEYS:
        if all(key in i for i in items):
            return key
    return None


def deep_merge(target: Any, patch: Any, *, strategic: bool = False) -> Any:
    """JSON merge patch (RFC 7386); with `strategic`, lists of keyed objects (containers,
    ports, env) merge item by item, like kubectl's strategic merge for built-in types."""
    if strategic and isinstance(patch, list) and isinstance(target, list):
        key = _merge_key(patch)
        if key is not None and _merge_key(target) == key:
            merged = [dict(t) for t in target]
            index = {t[key]: i for i, t in enumerate(merged)}
            for item in patch:
                if item.get("$patch") == "delete":
                    merged = [t for t in merged if t[key] != item[key]]
                    index = {t[key]: i for i, t in enumerate(merged)}
                elif item[key] in index:
                    pos = index[item[key]]
                    merged[pos] = deep_merge(merged[pos], item, strategic=True)
                else:
                    index[item[key]] = len(merged)
                    merged.append(deep_merge({}, item, strategic=True))
            return merged
    if not isinstance(patch, dict):
        return patch
    if not isinstance(target, dict):
        target = {}
    out = dict(target)
    for k, v in patch.items():
        if k.startswith("$"):
            continue  # other strategic-merge directives
        if v is None:
            out.pop(k, None)
        else:
            out[k] = deep_merge(out.get(k), v, strategic=strategic)
    return out
