"""The sandbox's etcd: objects, one global resourceVersion, and a bounded event history.

Everything runs on one event loop and every mutation is synchronous, so no locks: a
mutation bumps the revision, stamps the object and fans the event out to watchers' bounded
queues. A watcher that cannot keep up is closed (its client re-lists), exactly what a real
API server does to a slow watcher, so a stuck client never grows memory here.
"""

from __future__ import annotations

import asyncio
import builtins
import copy
import datetime as dt
import uuid
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

Obj = dict[str, Any]


@dataclass(frozen=True)
class ResourceInfo:
    name: str  # plural, e.g. "pods"
    group: str  # "" for core
    version: str
    kind: str
    namespaced: bool
    short_names: tuple[str, ...] = ()
    verbs: tuple[str, ...] = ("get", "list", "watch")
    singular: str = ""
    categories: tuple[str, ...] = ()

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def qualified(self) -> str:
        """`pods`, `deployments.apps`: how error messages name the resource."""
        return f"{self.name}.{self.group}" if self.group else self.name


RESOURCES: dict[str, ResourceInfo] = {
    r.name: r
    for r in (
        ResourceInfo("namespaces", "", "v1", "Namespace", False, ("ns",), singular="namespace"),
        ResourceInfo(
            "pods",
            "",
            "v1",
            "Pod",
            True,
            ("po",),
            ("delete", "get", "list", "watch"),
            "pod",
            ("all",),
        ),
        ResourceInfo(
            "services",
            "",
            "v1",
            "Service",
            True,
            ("svc",),
            ("delete", "get", "list", "patch", "watch"),
            "service",
            ("all",),
        ),
        ResourceInfo("nodes", "", "v1", "Node", False, ("no",), singular="node"),
        ResourceInfo("events", "", "v1", "Event", True, ("ev",), singular="event"),
        ResourceInfo(
            "endpointslices",
            "discovery.k8s.io",
            "v1",
            "EndpointSlice",
            True,
            singular="endpointslice",
        ),
        ResourceInfo(
            "deployments",
            "apps",
            "v1",
            "Deployment",
            True,
            ("deploy",),
            ("delete", "get", "list", "patch", "update", "watch"),
            "deployment",
            ("all",),
        ),
        ResourceInfo(
            "statefulsets",
            "apps",
            "v1",
            "StatefulSet",
            True,
            ("sts",),
            ("delete", "get", "list", "patch", "update", "watch"),
            "statefulset",
            ("all",),
        ),
        ResourceInfo(
            "replicasets",
            "apps",
            "v1",
            "ReplicaSet",
            True,
            ("rs",),
            singular="replicaset",
            categories=("all",),
        ),
    )
}


def now_rfc3339() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class Event:
    rv: int
    resource: str
    namespace: str | None
    type: str  # ADDED / MODIFIED / DELETED
    old: Obj | None
    new: Obj  # for DELETED: the last state (with the deletion's resourceVersion)


@dataclass(eq=False)
class Watcher:
    resource: str
    namespace: str | None
    queue: asyncio.Queue[Event | None] = field(default_factory=lambda: asyncio.Queue(1000))
    overflowed: bool = False


class TooOld(Exception):
    def __init__(self, requested: int, oldest: int) -> None:
        super().__init__(f"too old resource version: {requested} ({oldest})")
        self.requested = requested
        self.oldest = oldest


class Store:
    def __init__(self, history: int = 1000) -> None:
        self._objects: dict[str, dict[tuple[str, str], Obj]] = {r: {} for r in RESOURCES}
        self.rv = 1
        self._history: deque[Event] = deque()
        self._history_max = history
        self.compacted_rv = 0  # events with rv <= this are gone
        self._watchers: set[Watcher] = set()
        self.listeners: list[Callable[[Event], None]] = []

    # -- reads ---------------------------------------------------------------------------
    def get(self, resource: str, ns: str | None, name: str) -> Obj | None:
        return self._objects[resource].get((ns or "", name))

    def list(self, resource: str, ns: str | None = None) -> list[Obj]:
        objs = self._objects[resource]
        keys = sorted(k for k in objs if ns is None or k[0] == ns)
        return [objs[k] for k in keys]

    def iter_all(self, resource: str) -> Iterator[Obj]:
        return iter(list(self._objects[resource].values()))

    # -- writes --------------------------------------------------------------------------
    def _next_rv(self) -> int:
        self.rv += 1
        return self.rv

    def create(self, resource: str, obj: Obj) -> Obj:
        info = RESOURCES[resource]
        meta = obj.setdefault("metadata", {})
        ns = meta.get("namespace", "") if info.namespaced else ""
        key = (ns, meta["name"])
        if key in self._objects[resource]:
            raise KeyError(f"{resource} {key} exists")
        obj["kind"] = info.kind
        obj["apiVersion"] = info.api_version
        # Keep kind/apiVersion first, like the real server's JSON.
        ordered: Obj = {"kind": info.kind, "apiVersion": info.api_version}
        ordered.update(obj)
        meta.setdefault("uid", str(uuid.uuid4()))
        meta.setdefault("creationTimestamp", now_rfc3339())
        rv = self._next_rv()
        meta["resourceVersion"] = str(rv)
        self._objects[resource][key] = ordered
        self._emit(Event(rv, resource, ns or None, "ADDED", None, copy.deepcopy(ordered)))
        return ordered

    def update(self, resource: str, obj: Obj) -> Obj:
        """Replace an object (the caller mutated a deep copy); no-op when nothing changed."""
        info = RESOURCES[resource]
        meta = obj["metadata"]
        ns = meta.get("namespace", "") if info.namespaced else ""
        key = (ns, meta["name"])
        old = self._objects[resource][key]
        if _strip_rv(old) == _strip_rv(obj):
            return old
        rv = self._next_rv()
        meta["resourceVersion"] = str(rv)
        self._objects[resource][key] = obj
        self._emit(Event(rv, resource, ns or None, "MODIFIED", old, copy.deepcopy(obj)))
        return obj

    def delete(self, resource: str, ns: str | None, name: str) -> Obj | None:
        old = self._objects[resource].pop((ns or "", name), None)
        if old is None:
            return None
        rv = self._next_rv()
        last = copy.deepcopy(old)
        last["metadata"]["resourceVersion"] = str(rv)
        self._emit(Event(rv, resource, ns or None, "DELETED", old, last))
        return last

    def compact(self) -> None:
        """Forget the history so far (the seeded topology): older resourceVersions get 410."""
        self._history.clear()
        self.compacted_rv = self.rv

    def _emit(self, ev: Event) -> None:
        self._history.append(ev)
        while len(self._history) > self._history_max:
            self.compacted_rv = self._history.popleft().rv
        for w in list(self._watchers):
            if w.resource == ev.resource and (w.namespace is None or w.namespace == ev.namespace):
                try:
                    w.queue.put_nowait(ev)
                except asyncio.QueueFull:
                    # The client resumes from the last event it got, replayed from history.
                    w.overflowed = True
                    self._end(w)
        for listener in list(self.listeners):
            listener(ev)

    # -- watch ---------------------------------------------------------------------------
    def watch(
        self, resource: str, ns: str | None, since: int | None
    ) -> tuple[Watcher, builtins.list[Event]]:
        """Register a watcher; return it and the history after `since` (None: no replay)."""
        replay: builtins.list[Event] = []
        if since is not None:
            if since < self.compacted_rv:
                raise TooOld(since, self.compacted_rv + 1)
            replay = [
                e
                for e in self._history
                if e.rv > since and e.resource == resource and (ns is None or e.namespace == ns)
            ]
        w = Watcher(resource, ns)
        self._watchers.add(w)
        return w, replay

    @property
    def watches(self) -> int:
        """Watch streams open now (tests and benches count them)."""
        return len(self._watchers)

    def unwatch(self, w: Watcher) -> None:
        self._watchers.discard(w)

    def close_watchers(self) -> None:
        """End every watch stream (API server going down)."""
        for w in list(self._watchers):
            self._end(w)

    def _end(self, w: Watcher) -> None:
        self._watchers.discard(w)
        while not w.queue.empty():
            w.queue.get_nowait()
        w.queue.put_nowait(None)


def _strip_rv(obj: Obj) -> Obj:
    meta = {k: v for k, v in obj.get("metadata", {}).items() if k != "resourceVersion"}
    return {**obj, "metadata": meta}
