"""Kubernetes Events (core/v1) for what the sandbox's controllers and kubelet do.

They make `kubectl describe` and `kubectl get events` look like a real cluster, and give
dashboards something true to show. Bounded: the oldest are deleted past `MAX_EVENTS`.
"""

from __future__ import annotations

import time
from collections import deque

from portfwd.sandbox.store import Obj, Store, now_rfc3339

MAX_EVENTS = 500


class EventRecorder:
    def __init__(self, store: Store, limit: int = MAX_EVENTS) -> None:
        self._store = store
        self._names: deque[tuple[str, str]] = deque()
        self._limit = limit
        self._last_ns = 0

    def record(
        self,
        obj: Obj,
        reason: str,
        message: str,
        *,
        warning: bool = False,
        component: str = "kubelet",
        host: str | None = None,
    ) -> None:
        meta = obj["metadata"]
        ns = meta.get("namespace") or "default"
        # Like the real recorder: <object>.<hex unix nanoseconds>, so names sort by time.
        self._last_ns = max(time.time_ns(), self._last_ns + 1)
        name = f"{meta['name']}.{self._last_ns:x}"
        now = now_rfc3339()
        source: Obj = {"component": component}
        if host:
            source["host"] = host
        self._store.create(
            "events",
            {
                "metadata": {"name": name, "namespace": ns},
                "involvedObject": {
                    "kind": obj["kind"],
                    "namespace": ns,
                    "name": meta["name"],
                    "uid": meta["uid"],
                    "apiVersion": obj["apiVersion"],
                    "resourceVersion": meta.get("resourceVersion", ""),
                },
                "reason": reason,
                "message": message,
                "source": source,
                "firstTimestamp": now,
                "lastTimestamp": now,
                "count": 1,
                "type": "Warning" if warning else "Normal",
                "eventTime": None,
                "reportingComponent": component,
                "reportingInstance": host or "",
            },
        )
        self._names.append((ns, name))
        while len(self._names) > self._limit:
            old_ns, old_name = self._names.popleft()
            self._store.delete("events", old_ns, old_name)
