"""In-memory stand-ins for pure rendering tests (snapshots with fixed data).

Everything that exercises behaviour uses the real Manager and the sandbox; these exist so
screenshots are deterministic (fixed clock, fixed pods, fixed byte counts).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import replace

from portfwd.engine.browse import ResourceRow, ResourceView
from portfwd.engine.catalog import ContextChoice, ListForbidden, PortChoice, ResourceChoice
from portfwd.engine.events import (
    Event,
    ForwardAdded,
    ForwardChanged,
    ForwardRemoved,
    LogLine,
    StatsTick,
)
from portfwd.engine.model import (
    ConnectionInfo,
    ForwardSnapshot,
    ForwardSpec,
    ForwardState,
    ForwardStats,
    LogEntry,
    LogLevel,
)
from portfwd.engine.podlogs import PodLogPage
from portfwd.errors import PortfwdError

NOW = 1_780_000_000.0  # fixed wall clock for snapshots


class FakeSubscription:
    def __init__(self, owner: FakeManager) -> None:
        self.queue: asyncio.Queue[Event] = asyncio.Queue()
        self.owner = owner

    def __aiter__(self) -> AsyncIterator[Event]:
        return self._iter()

    async def _iter(self) -> AsyncIterator[Event]:
        while True:
            yield await self.queue.get()

    def close(self) -> None:
        if self in self.owner.subs:
            self.owner.subs.remove(self)


FakeConnection = ConnectionInfo  # one open connection, as the detail pane shows it


class FakeManager:
    def __init__(self, snapshots: list[ForwardSnapshot] | None = None) -> None:
        self.forwards: dict[str, ForwardSnapshot] = {s.id: s for s in snapshots or []}
        self.log: dict[str | None, list[LogEntry]] = {}
        self.connections: dict[str, list[FakeConnection]] = {}
        self.pod_pages: dict[str, PodLogPage] = {}
        self.pod_news = asyncio.Event()
        self.subs: list[FakeSubscription] = []
        self.calls: list[tuple[str, str]] = []
        self.shut_down = False
        self._n = 0

    def publish(self, event: Event) -> None:
        for sub in self.subs:
            sub.queue.put_nowait(event)

    def subscribe(self, maxsize: int = 1000) -> FakeSubscription:
        sub = FakeSubscription(self)
        self.subs.append(sub)
        return sub

    def snapshot(self) -> list[ForwardSnapshot]:
        return list(self.forwards.values())

    def get(self, forward_id: str) -> ForwardSnapshot:
        return self.forwards[forward_id]

    def logs(self, forward_id: str | None) -> list[LogEntry]:
        return list(self.log.get(forward_id, []))

    def open_connections(self, forward_id: str) -> list[ConnectionInfo]:
        if forward_id not in self.forwards:
            raise KeyError(forward_id)
        return list(self.connections.get(forward_id, []))

    def add_log(self, forward_id: str | None, entry: LogEntry) -> None:
        self.log.setdefault(forward_id, []).append(entry)
        self.publish(LogLine(forward_id, entry))

    def set(self, snap: ForwardSnapshot) -> None:
        self.forwards[snap.id] = snap
        self.publish(ForwardChanged(snap))

    def stats(self, forward_id: str, stats: ForwardStats) -> None:
        self.forwards[forward_id] = replace(self.forwards[forward_id], stats=stats)
        self.publish(StatsTick(forward_id, stats))

    async def add(
        self, spec: ForwardSpec, *, start: bool = True, forward_id: str | None = None
    ) -> str:
        self._n += 1
        fid = forward_id or f"f{self._n}"
        self.calls.append(("add", fid))
        snap = ForwardSnapshot(
            id=fid,
            spec=spec,
            state=ForwardState.STOPPED,
            context=spec.context or "",
            namespace=spec.namespace or "",
        )
        self.forwards[fid] = snap
        self.publish(ForwardAdded(snap))
        if start:
            await self.start(fid)
        return fid

    async def start(self, forward_id: str) -> ForwardSnapshot:
        self.calls.append(("start", forward_id))
        snap = self.forwards[forward_id]
        port = snap.spec.local_port or 40000
        snap = replace(
            snap,
            state=ForwardState.ACTIVE,
            bound=((snap.spec.addresses[0], port),),
            started_at=NOW,
            reason="",
        )
        self.set(snap)
        return snap

    async def stop(self, forward_id: str) -> None:
        self.calls.append(("stop", forward_id))
        self.set(replace(self.forwards[forward_id], state=ForwardState.STOPPED, bound=()))

    async def restart(self, forward_id: str) -> ForwardSnapshot:
        self.calls.append(("restart", forward_id))
        await self.stop(forward_id)
        return await self.start(forward_id)

    async def update(self, forward_id: str, spec: ForwardSpec) -> None:
        self.calls.append(("update", forward_id))
        snap = replace(self.forwards[forward_id], spec=spec)
        self.forwards[forward_id] = snap
        if snap.state is ForwardState.ACTIVE:
            await self.start(forward_id)
        else:
            self.set(snap)

    async def set_reconnect(self, forward_id: str, enabled: bool) -> None:
        self.calls.append(("reconnect on" if enabled else "reconnect off", forward_id))
        snap = self.forwards[forward_id]
        self.set(replace(snap, spec=replace(snap.spec, reconnect=enabled)))

    def set_pod_log(self, forward_id: str, page: PodLogPage) -> None:
        """What `pod_log` answers for the forward from now on (a reader waiting wakes)."""
        self.pod_pages[forward_id] = page
        self.pod_news.set()
        self.pod_news = asyncio.Event()

    async def pod_log(
        self, forward_id: str, container: str | None = None, after: int = 0, wait: float = 0
    ) -> PodLogPage:
        if forward_id not in self.forwards:
            raise KeyError(forward_id)
        self.calls.append(("pod log", forward_id))
        page = self.pod_pages.get(forward_id, PodLogPage())
        if after and after >= page.next:
            news = self.pod_news
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(news.wait(), wait)
            page = self.pod_pages.get(forward_id, PodLogPage())
        if after and after < page.next:
            return replace(page, lines=page.lines[len(page.lines) - (page.next - after) :])
        return page

    async def set_http_log(self, forward_id: str, enabled: bool) -> None:
        self.calls.append(("http log on" if enabled else "http log off", forward_id))
        snap = self.forwards[forward_id]
        self.set(replace(snap, spec=replace(snap.spec, http_log=enabled)))

    async def remove(self, forward_id: str) -> None:
        self.calls.append(("remove", forward_id))
        del self.forwards[forward_id]
        self.publish(ForwardRemoved(forward_id))

    async def shutdown(self) -> None:
        self.shut_down = True
        for fid, snap in list(self.forwards.items()):
            self.forwards[fid] = replace(snap, state=ForwardState.STOPPED, bound=())


def mixed_snapshots() -> list[ForwardSnapshot]:
    """One forward in every state, with traffic and errors, for the dashboard snapshot."""

    def spec(target: str, remote: int | str, local: int) -> ForwardSpec:
        return ForwardSpec(
            target=target, remote_port=remote, local_port=local, namespace="demo", context="sandbox"
        )

    return [
        ForwardSnapshot(
            id="a",
            spec=spec("svc/echo", 80, 8080),
            state=ForwardState.ACTIVE,
            context="sandbox",
            namespace="demo",
            pod="echo-5f7c9-abcde",
            remote_port=9000,
            port_name="echo",
            bound=(("127.0.0.1", 8080),),
            started_at=NOW - 3725,
            stats=ForwardStats(
                connections_open=2, connections_total=9, bytes_in=1_572_864, bytes_out=20_480
            ),
        ),
        ForwardSnapshot(
            id="b",
            spec=spec("deploy/web", 8080, 18080),
            state=ForwardState.STARTING,
            context="sandbox",
            namespace="demo",
        ),
        ForwardSnapshot(
            id="c",
            spec=spec("svc/web", "http", 8081),
            state=ForwardState.RECONNECTING,
            context="sandbox",
            namespace="demo",
            pod="web-7d9f-qwert",
            remote_port=8080,
            port_name="http",
            bound=(("127.0.0.1", 8081),),
            started_at=NOW - 42,
            reason="pod web-7d9f-qwert deleted; waiting for a ready endpoint",
            stats=ForwardStats(bytes_in=512, bytes_out=128, reconnects=2),
            attempt=3,
            next_retry_at=NOW + 3.2,  # the countdown reads 4s
        ),
        ForwardSnapshot(
            id="d",
            spec=replace(spec("svc/broken", 80, 8082), reconnect=False),  # marked ⊘
            state=ForwardState.ERROR,
            context="sandbox",
            namespace="demo",
            reason="svc/broken has no ready endpoints (0 of 1 pods ready: CrashLoopBackOff)",
        ),
        ForwardSnapshot(
            id="e",
            spec=spec("pod/db-0", 5432, 15432),
            state=ForwardState.STOPPED,
            context="sandbox",
            namespace="demo",
        ),
    ]


class FakeCatalog:
    """Fixed answers; `gate` (an Event) holds a list open to show the loading state."""

    def __init__(self) -> None:
        self.gate: asyncio.Event | None = None
        self.fail: dict[str, str] = {}
        self.forbid_namespaces: set[str] = {"sandbox-limited"}
        self.live: FakeLive | None = None

    async def _wait(self, what: str) -> None:
        if self.gate is not None:
            await self.gate.wait()
        if what in self.fail:
            raise PortfwdError(self.fail[what])  # what KubeCatalog raises for an API error

    async def contexts(self) -> list[ContextChoice]:
        await self._wait("contexts")
        return [
            ContextChoice("sandbox", "sandbox", "demo", current=True),
            ContextChoice("sandbox-limited", "sandbox", "demo"),
            ContextChoice("sandbox-viewer", "sandbox", "demo"),
        ]

    async def namespaces(self, context: str) -> list[str]:
        await self._wait("namespaces")
        if context in self.forbid_namespaces:
            raise ListForbidden(
                'namespaces is forbidden: User "limited" cannot list resource "namespaces"'
            )
        return ["default", "demo", "kube-system"]

    async def resources(self, context: str, namespace: str, kind: str) -> list[ResourceChoice]:
        await self._wait("resources")
        return [
            ResourceChoice("broken", "ClusterIP", "0/1 ready", healthy=False, detail="80/TCP"),
            ResourceChoice("dns", "ClusterIP", "1/1 ready", detail="53/UDP,53/TCP"),
            ResourceChoice("echo", "ClusterIP", "2/2 ready", detail="80/TCP"),
            ResourceChoice("web", "ClusterIP", "2/2 ready", detail="80/TCP,443/TCP"),
        ]

    async def ports(self, context: str, namespace: str, kind: str, name: str) -> list[PortChoice]:
        await self._wait("ports")
        return [
            PortChoice(80, "http", "TCP", "→ targetPort echo"),
            PortChoice(443, "https", "TCP"),
            PortChoice(53, "dns", "UDP"),
        ]

    async def node_of(
        self, context: str, namespace: str, pod: str, kubeconfig: str | None = None
    ) -> str:
        await self._wait("node")
        return "sandbox-node-1"

    async def live_resources(self, context: str, namespace: str) -> FakeLive:
        await self._wait("live")
        self.live = FakeLive()
        return self.live


class FakeLive:
    """A namespace that holds still: `views()` yields `view`, then whatever `push` sends."""

    def __init__(self, view: ResourceView | None = None) -> None:
        self.view = view or resource_view()
        self.queue: asyncio.Queue[ResourceView] = asyncio.Queue()
        self.retries = 0
        self.closed = False

    async def views(self) -> AsyncGenerator[ResourceView, None]:
        try:
            yield self.view
            while True:
                yield await self.queue.get()
        finally:
            self.closed = True

    def push(self, view: ResourceView) -> None:
        self.queue.put_nowait(view)

    def retry_now(self) -> None:
        self.retries += 1


def resource_view() -> ResourceView:
    """Every kind, healthy and not, with ports of every sort."""
    created = NOW - 7200
    rows = (
        ResourceRow(
            "service",
            "api",
            "1/1",
            "ClusterIP",
            True,
            (
                PortChoice(443, "https", "TCP", "→ targetPort https"),
                PortChoice(9090, "metrics", "TCP", "→ targetPort metrics"),
            ),
            created,
        ),
        ResourceRow(
            "service",
            "crashy",
            "0/1",
            "ClusterIP",
            False,
            (PortChoice(80, "http", "TCP", "→ targetPort http"),),
            created,
            "no ready endpoint",
        ),
        ResourceRow(
            "service", "dns", "1/1", "ClusterIP", True, (PortChoice(53, "dns", "UDP"),), created
        ),
        ResourceRow(
            "service",
            "echo",
            "2/2",
            "ClusterIP",
            True,
            (PortChoice(80, "tcp", "TCP", "→ targetPort echo"),),
            created,
        ),
        ResourceRow(
            "pod",
            "crashy",
            "0/1",
            "CrashLoopBackOff",
            False,
            (PortChoice(8080, "http", "TCP"),),
            created,
            "phase Running",
            12,
        ),
        ResourceRow(
            "pod",
            "echo-5f7c9-abcde",
            "1/1",
            "Running",
            True,
            (PortChoice(9000, "echo", "TCP"),),
            created,
        ),
        ResourceRow(
            "pod",
            "pending-unscheduled",
            "0/1",
            "Pending",
            False,
            (PortChoice(8080),),
            NOW - 90,
            "phase Pending",
        ),
        ResourceRow(
            "deployment",
            "echo",
            "2/2",
            "Available",
            True,
            (PortChoice(9000, "echo", "TCP"),),
            created,
        ),
        ResourceRow(
            "deployment",
            "web",
            "2/3",
            "Progressing",
            True,
            (PortChoice(8080, "http", "TCP"),),
            created,
        ),
        ResourceRow(
            "statefulset",
            "postgres",
            "2/2",
            "Available",
            True,
            (PortChoice(5432, "postgres", "TCP"),),
            created,
        ),
    )
    return ResourceView(rows)


def log_entries() -> list[LogEntry]:
    return [
        LogEntry(NOW - 30, LogLevel.INFO, "resolving svc/echo port 80 in demo"),
        LogEntry(
            NOW - 29.9,
            LogLevel.INFO,
            "svc/echo port 80 (tcp) -> targetPort echo -> pod echo-5f7c9-abcde port 9000 "
            "(Ready endpoint 1 of 2)",
        ),
        LogEntry(NOW - 29.8, LogLevel.INFO, "listening on 127.0.0.1:8080"),
        LogEntry(NOW - 12, LogLevel.DEBUG, "connection 1 from 127.0.0.1:51234 opened"),
        LogEntry(
            NOW - 5,
            LogLevel.ERROR,
            "error channel: an error occurred forwarding 8080 -> 9000: error forwarding port "
            "9000 to pod echo-5f7c9-abcde: dial tcp4 127.0.0.1:9000: connect: connection refused",
        ),
        LogEntry(NOW - 4, LogLevel.WARNING, "pod echo-5f7c9-abcde not ready; switching endpoint"),
    ]


LONG_ERROR = (
    "svc/broken has no ready endpoints (0 of 1 pods ready: broken-7c9d-xk2p1 is in "
    "CrashLoopBackOff: back-off 5m0s restarting failed container=broken)"
)
LONG_WAIT = (
    "no Ready pod for svc/web: 3 pods match, none is Ready (web-7d9f-qwert: phase Pending "
    "(ContainerCreating); web-7d9f-asdfg: readiness probe failing: HTTP probe failed with "
    "statuscode: 503)"
)


def long_error_snapshots() -> list[ForwardSnapshot]:
    """The mixed states, with the long reasons a real cluster gives."""
    snaps = {s.id: s for s in mixed_snapshots()}
    snaps["c"] = replace(snaps["c"], reason=LONG_WAIT)
    snaps["d"] = replace(snaps["d"], reason=LONG_ERROR)
    return list(snaps.values())
