"""Server-side Tables (meta.k8s.io/v1), so `kubectl get` prints the columns users know.

kubectl asks for them with `Accept: application/json;as=Table;v=v1;g=meta.k8s.io`; without
them it falls back to NAME/AGE only.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

from portfwd.sandbox.store import Obj, ResourceInfo

TABLE_MARKER = "as=Table"


def human_duration(seconds: float) -> str:
    """k8s.io/apimachinery/pkg/util/duration.HumanDuration, to the same granularity."""
    s = int(max(seconds, 0))
    if s < 120:
        return f"{s}s"
    m = s // 60
    if m < 10:
        return f"{m}m{s % 60}s" if s % 60 else f"{m}m"
    if m < 180:
        return f"{m}m"
    h = m // 60
    if h < 8:
        return f"{h}h{m % 60}m" if m % 60 else f"{h}h"
    if h < 48:
        return f"{h}h"
    d = h // 24
    if h < 24 * 8:
        return f"{d}d{h % 24}h" if h % 24 else f"{d}d"
    if d < 365 * 2:
        return f"{d}d"
    return f"{d // 365}y"


def _age(obj: Obj) -> str:
    ts = obj["metadata"].get("creationTimestamp")
    if not ts:
        return "<unknown>"
    created = dt.datetime.strptime(ts, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.UTC)
    return human_duration((dt.datetime.now(dt.UTC) - created).total_seconds())


def _col(name: str, kind: str = "string", priority: int = 0, fmt: str = "") -> Obj:
    return {"name": name, "type": kind, "format": fmt, "description": name, "priority": priority}


def _pod_row(pod: Obj) -> list[Any]:
    status = pod.get("status", {})
    statuses = status.get("containerStatuses", [])
    containers = pod["spec"].get("containers", [])
    ready = sum(1 for c in statuses if c.get("ready"))
    restarts = sum(int(c.get("restartCount", 0)) for c in statuses)
    reason = status.get("phase", "Unknown")
    for c in statuses:
        waiting = c.get("state", {}).get("waiting")
        if waiting and waiting.get("reason"):
            reason = waiting["reason"]
    if pod["metadata"].get("deletionTimestamp"):
        reason = "Terminating"
    return [
        pod["metadata"]["name"],
        f"{ready}/{len(containers)}",
        reason,
        restarts,
        _age(pod),
        status.get("podIP", "<none>"),
        pod["spec"].get("nodeName", "<none>"),
        "<none>",
        "<none>",
    ]


def _svc_row(svc: Obj) -> list[Any]:
    spec = svc["spec"]
    ports = ",".join(f"{p['port']}/{p.get('protocol', 'TCP')}" for p in spec.get("ports", []))
    selector = ",".join(f"{k}={v}" for k, v in sorted(spec.get("selector", {}).items()))
    return [
        svc["metadata"]["name"],
        spec.get("type", "ClusterIP"),
        spec.get("clusterIP", ""),
        "<none>",
        ports or "<none>",
        _age(svc),
        selector or "<none>",
    ]


def _images(obj: Obj) -> tuple[str, str]:
    cs = obj["spec"]["template"]["spec"]["containers"]
    return ",".join(c["name"] for c in cs), ",".join(c["image"] for c in cs)


def _deploy_row(d: Obj) -> list[Any]:
    st = d.get("status", {})
    names, images = _images(d)
    return [
        d["metadata"]["name"],
        f"{st.get('readyReplicas', 0)}/{d['spec'].get('replicas', 1)}",
        st.get("updatedReplicas", 0),
        st.get("availableReplicas", 0),
        _age(d),
        names,
        images,
        ",".join(f"{k}={v}" for k, v in d["spec"]["selector"]["matchLabels"].items()),
    ]


def _rs_row(rs: Obj) -> list[Any]:
    st = rs.get("status", {})
    names, images = _images(rs)
    return [
        rs["metadata"]["name"],
        rs["spec"].get("replicas", 0),
        st.get("replicas", 0),
        st.get("readyReplicas", 0),
        _age(rs),
        names,
        images,
    ]


def _sts_row(s: Obj) -> list[Any]:
    st = s.get("status", {})
    names, images = _images(s)
    return [
        s["metadata"]["name"],
        f"{st.get('readyReplicas', 0)}/{s['spec'].get('replicas', 1)}",
        _age(s),
        names,
        images,
    ]


def _ns_row(n: Obj) -> list[Any]:
    return [n["metadata"]["name"], n.get("status", {}).get("phase", "Active"), _age(n)]


def _slice_row(s: Obj) -> list[Any]:
    ports = ",".join(str(p["port"]) for p in s.get("ports") or []) or "<unset>"
    addrs = [a for e in s.get("endpoints") or [] for a in e.get("addresses", [])]
    shown = ",".join(addrs[:3]) + (f" + {len(addrs) - 3} more..." if len(addrs) > 3 else "")
    return [s["metadata"]["name"], s.get("addressType", "IPv4"), ports, shown or "<unset>", _age(s)]


def _event_row(e: Obj) -> list[Any]:
    inv = e.get("involvedObject", {})
    last = e.get("lastTimestamp") or e["metadata"].get("creationTimestamp")
    age = _age({"metadata": {"creationTimestamp": last}})
    return [
        age,
        e.get("type", ""),
        e.get("reason", ""),
        f"{inv.get('kind', '').lower()}/{inv.get('name', '')}",
        e.get("message", ""),
        e["metadata"]["name"],
    ]


def _node_row(n: Obj) -> list[Any]:
    return [n["metadata"]["name"], "Ready", "<none>", _age(n), "v1.32.0-sandbox"]


COLUMNS: dict[str, tuple[list[Obj], Callable[[Obj], list[Any]]]] = {
    "pods": (
        [
            _col("Name", fmt="name"),
            _col("Ready"),
            _col("Status"),
            _col("Restarts", "integer"),
            _col("Age"),
            _col("IP", priority=1),
            _col("Node", priority=1),
            _col("Nominated Node", priority=1),
            _col("Readiness Gates", priority=1),
        ],
        _pod_row,
    ),
    "services": (
        [
            _col("Name", fmt="name"),
            _col("Type"),
            _col("Cluster-IP"),
            _col("External-IP"),
            _col("Port(s)"),
            _col("Age"),
            _col("Selector", priority=1),
        ],
        _svc_row,
    ),
    "deployments": (
        [
            _col("Name", fmt="name"),
            _col("Ready"),
            _col("Up-to-date", "integer"),
            _col("Available", "integer"),
            _col("Age"),
            _col("Containers", priority=1),
            _col("Images", priority=1),
            _col("Selector", priority=1),
        ],
        _deploy_row,
    ),
    "replicasets": (
        [
            _col("Name", fmt="name"),
            _col("Desired", "integer"),
            _col("Current", "integer"),
            _col("Ready", "integer"),
            _col("Age"),
            _col("Containers", priority=1),
            _col("Images", priority=1),
        ],
        _rs_row,
    ),
    "statefulsets": (
        [
            _col("Name", fmt="name"),
            _col("Ready"),
            _col("Age"),
            _col("Containers", priority=1),
            _col("Images", priority=1),
        ],
        _sts_row,
    ),
    "namespaces": ([_col("Name", fmt="name"), _col("Status"), _col("Age")], _ns_row),
    "endpointslices": (
        [
            _col("Name", fmt="name"),
            _col("AddressType"),
            _col("Ports"),
            _col("Endpoints"),
            _col("Age"),
        ],
        _slice_row,
    ),
    "events": (
        [
            _col("Last Seen"),
            _col("Type"),
            _col("Reason"),
            _col("Object"),
            _col("Message"),
            _col("Name", fmt="name", priority=1),
        ],
        _event_row,
    ),
    "nodes": (
        [_col("Name", fmt="name"), _col("Status"), _col("Roles"), _col("Age"), _col("Version")],
        _node_row,
    ),
}


def _row_object(obj: Obj, include: str | None) -> Obj | None:
    if include == "None":
        return None
    if include == "Object":
        return obj
    return {
        "kind": "PartialObjectMetadata",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": obj["metadata"],
    }


def table_for(info: ResourceInfo, objs: list[Obj], rv: str, include: str | None) -> Obj:
    columns, row = COLUMNS.get(info.name, ([_col("Name", fmt="name"), _col("Age")], None))
    rows = []
    for obj in objs:
        cells = row(obj) if row else [obj["metadata"]["name"], _age(obj)]
        entry: Obj = {"cells": cells}
        ro = _row_object(obj, include)
        if ro is not None:
            entry["object"] = ro
        rows.append(entry)
    return {
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": {"resourceVersion": rv},
        "columnDefinitions": columns,
        "rows": rows,
    }
