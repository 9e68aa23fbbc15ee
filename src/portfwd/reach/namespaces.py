"""`portfwd ns`: every Service of some namespaces, on its own loopback address and ports.

A :class:`NamespaceForwarder` watches the Services (and, for headless ones, the
EndpointSlices) of each (context, namespace) through the Manager's informers, and keeps one
forward per Service TCP port in the Manager: `svc/NAME` with `spread` (a Service, not one pod)
on the Service's address, and for a headless Service also `pod/NAME` on an address per pod
(`POD.SVC.NS`). A Service or pod that appears gets its forwards at once, one that goes away
loses them; every change is reported as lines (`on_lines`) and, with a hosts block, written
there. Addresses and ports: `portfwd.reach.loopback`; names: `portfwd.reach.names`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from portfwd.engine.events import LogLine
from portfwd.engine.informers import Informer, InformerPool
from portfwd.engine.manager import Manager, Subscription
from portfwd.engine.model import ForwardSpec, ForwardState, LogKind, LogLevel
from portfwd.kube.client import KubeClient
from portfwd.kube.objects import EndpointSlice, Service
from portfwd.reach.hostsfile import HostsBlock
from portfwd.reach.loopback import AddressTable, local_ports
from portfwd.reach.names import host_names
from portfwd.safetext import escape_controls
from portfwd.tunnel.addresses import format_host_port

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Scope:
    """One namespace of one cluster, as the command line named it."""

    context: str | None
    namespace: str


@dataclass(frozen=True)
class Want:
    """One forward `portfwd ns` keeps: a Service port (pod "") or a headless pod's port."""

    context: str
    namespace: str
    service: str
    pod: str
    port: int  # the Service port (the native port)
    remote: int | str  # what the forward asks for: the Service port, or the pod's targetPort
    port_name: str
    address: str
    local_port: int


@dataclass
class _Watched:
    scope: Scope
    client: KubeClient
    context: str
    services: Informer[Any]
    slices: Informer[Any]


class NamespaceForwarder:
    def __init__(
        self,
        manager: Manager,
        scopes: Sequence[Scope],
        *,
        kubeconfig: str | None,
        selector: str | None,
        exclude: Sequence[str],
        table: AddressTable,
        port_start: int,
        many_addresses: bool = True,
        hosts: HostsBlock | None = None,
        on_lines: Callable[[list[str]], None] = lambda lines: None,
        on_warning: Callable[[str], None] | None = None,
    ) -> None:
        assert manager.informers is not None, "portfwd ns follows through informers"
        self.manager = manager
        self._pool: InformerPool = manager.informers
        self.scopes = list(scopes)
        self.kubeconfig = kubeconfig
        self.selector = selector
        self.exclude = set(exclude)
        self.table = table
        self.port_start = port_start
        self.many_addresses = many_addresses
        self.hosts = hosts
        self.on_lines = on_lines
        self.on_warning = on_warning  # a forward's warnings and recoveries, one line each
        self._printer: asyncio.Task[None] | None = None
        self.forwards: dict[Want, str] = {}  # what is wanted -> forward id
        self._watched: list[_Watched] = []
        self._changed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._default_context = ""
        self._empty_said: set[Scope] = set()
        self.synced = asyncio.Event()  # the first table was printed

    # -- lifecycle --------------------------------------------------------------------------

    async def start(self) -> None:
        """Resolve the contexts (an unknown one: PortfwdError) and start watching. The hosts
        file is checked first: one that cannot be written fails before any cluster is asked."""
        if self.hosts is not None and await asyncio.to_thread(self.hosts.claim):
            self.on_lines([f"removed a stale portfwd block from {self.hosts.path}"])
        for scope in self.scopes:
            client = await self.manager.clients.get(scope.context, self.kubeconfig)
            if not self._default_context:
                self._default_context = client.context
            services = self._pool.acquire(
                client, "services", scope.namespace, label_selector=self.selector
            )
            slices = self._pool.acquire(client, "endpointslices", scope.namespace)
            for informer in (services, slices):
                informer.listen(self._changed)
            self._watched.append(_Watched(scope, client, client.context, services, slices))
        self._changed.set()
        self._task = asyncio.create_task(self._run(), name="portfwd-ns")
        if self.on_warning is not None:
            self._printer = asyncio.create_task(
                self._print_warnings(self.manager.subscribe(maxsize=10_000), self.on_warning),
                name="portfwd-ns-warnings",
            )

    async def close(self) -> None:
        """Stop following, remove every forward and the hosts block."""
        for task in (self._task, self._printer):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._task = self._printer = None
        for watched in self._watched:
            for informer in (watched.services, watched.slices):
                informer.unlisten(self._changed)
                self._pool.release(informer)
        self._watched.clear()
        for fid in list(self.forwards.values()):
            with contextlib.suppress(KeyError):
                await self.manager.remove(fid)
        self.forwards.clear()
        if self.hosts is not None:
            await asyncio.to_thread(self.hosts.remove)

    async def _run(self) -> None:
        while True:
            await self._changed.wait()
            self._changed.clear()
            if not all(self._ready(w) for w in self._watched):
                continue  # the first lists are still in flight
            try:
                await self.reconcile()
            except asyncio.CancelledError:
                raise
            except Exception:  # a bug: say it, keep what runs
                log.exception("portfwd ns could not apply a change")

    async def _print_warnings(self, events: Subscription, say: Callable[[str], None]) -> None:
        """What goes wrong (or right again) with one of the forwards, named by its Service."""
        try:
            async for event in events:
                if not isinstance(event, LogLine) or event.forward_id is None:
                    continue
                entry = event.entry
                if entry.level < LogLevel.WARNING and entry.kind is not LogKind.RECOVERED:
                    continue
                for want, fid in self.forwards.items():
                    if fid == event.forward_id:
                        say(f"{self._label(want)}:{want.port}: {entry.message}")
                        break
        finally:
            events.close()

    @staticmethod
    def _ready(watched: _Watched) -> bool:
        return all(i.synced or i.error is not None for i in (watched.services, watched.slices))

    # -- what is wanted -----------------------------------------------------------------------

    def wanted(self) -> list[Want]:
        out: list[Want] = []
        for watched in self._watched:
            scope = watched.scope
            services: list[Service] = sorted(
                watched.services.objects.values(), key=lambda s: s.name
            )
            slices: list[EndpointSlice] = list(watched.slices.objects.values())
            shown = [s for s in services if s.name not in self.exclude]
            if not shown and scope not in self._empty_said:
                self._empty_said.add(scope)
                sel = f" matching -l {self.selector}" if self.selector else ""
                self.on_lines(
                    [
                        f"namespace {scope.namespace} (context {watched.context}) has no "
                        f"Services{sel}; watching for new ones"
                    ]
                )
            for svc in shown:
                out += self._service_wants(watched, svc, slices)
        return out

    def _service_wants(
        self, watched: _Watched, svc: Service, slices: list[EndpointSlice]
    ) -> list[Want]:
        if svc.type == "ExternalName" or svc.selector is None:
            return []  # no pods behind it: nothing to forward to
        tcp = [p for p in svc.ports if p.protocol.upper() == "TCP"]
        if not tcp:
            return []
        ns, ctx = watched.scope.namespace, watched.context
        out = self._at(ctx, ns, svc.name, "", [(p.port, p.port, p.name) for p in tcp])
        if svc.headless:
            pods = sorted(
                {
                    ep.target_ref.name
                    for s in slices
                    if s.service_name == svc.name
                    for ep in s.endpoints
                    if ep.target_ref is not None
                    and ep.target_ref.kind == "Pod"
                    and not ep.terminating
                }
            )
            for pod in pods:
                ports = [(p.port, p.target_port or p.port, p.name) for p in tcp]
                out += self._at(ctx, ns, svc.name, pod, ports)
        return out

    def _at(
        self,
        context: str,
        namespace: str,
        service: str,
        pod: str,
        ports: list[tuple[int, int | str, str]],
    ) -> list[Want]:
        name = f"{pod}.{service}" if pod else service
        if self.many_addresses:
            address = self.table.address(context, namespace, name)
            mapped = local_ports([p for p, _, _ in ports], self.port_start)
        else:
            address, mapped = "127.0.0.1", {p: 0 for p, _, _ in ports}
        return [
            Want(context, namespace, service, pod, port, remote, pname, address, mapped[port])
            for port, remote, pname in ports
        ]

    # -- applying it ----------------------------------------------------------------------------

    async def reconcile(self) -> None:
        wanted = self.wanted()
        await asyncio.to_thread(self.table.save)
        keep = set(wanted)
        gone = [w for w in self.forwards if w not in keep]
        new = [w for w in wanted if w not in self.forwards]
        lines: list[str] = []
        for want in gone:
            fid = self.forwards.pop(want)
            with contextlib.suppress(KeyError):
                await self.manager.remove(fid)
            if self.synced.is_set():
                lines.append(f"removed {self._label(want)} {self._where(want, 0)}")
        ids = []
        for want in new:
            spec = ForwardSpec(
                target=f"pod/{want.pod}" if want.pod else f"svc/{want.service}",
                remote_port=want.remote if want.pod else want.port,
                local_port=want.local_port,
                namespace=want.namespace,
                context=want.context,
                kubeconfig=self.kubeconfig,
                addresses=(want.address,),
                spread=not want.pod,
            )
            fid = await self.manager.add(spec, start=False)
            self.forwards[want] = fid
            ids.append(fid)
        await asyncio.gather(*(self.manager.start(fid) for fid in ids))
        if not self.synced.is_set():
            lines += self.table_lines()
        else:
            for want in new:
                lines.append(f"added {self._label(want)} {self._where(want)}")
        if self.hosts is not None and (gone or new or not self.synced.is_set()):
            await asyncio.to_thread(self.hosts.write, self.hosts_entries())
        self.synced.set()
        if lines:
            self.on_lines(lines)

    def _label(self, want: Want) -> str:
        return (
            f"{want.pod}.{want.service}.{want.namespace}"
            if want.pod
            else f"{want.service}.{want.namespace}"
        )

    def _where(self, want: Want, local: int | None = None) -> str:
        port = want.local_port if local is None else local
        fid = self.forwards.get(want)
        if fid is not None and port == 0:
            port = self.manager.get(fid).local_port
        return format_host_port(want.address, port)

    def local_port(self, want: Want) -> int:
        """Where `want` listens now (on one address, the port bound)."""
        fid = self.forwards.get(want)
        return self.manager.get(fid).local_port if fid is not None else want.local_port

    def table_lines(self) -> list[str]:
        """NAME  ADDRESS:PORT  -> service port, for every forward, and the hosts lines."""
        rows: list[tuple[str, str, str]] = []
        for want, fid in sorted(self.forwards.items(), key=lambda kv: _order(kv[0])):
            snap = self.manager.get(fid)
            where = format_host_port(want.address, snap.local_port)
            port = f"{want.port}" + (f" ({want.port_name})" if want.port_name else "")
            note = "" if snap.state is ForwardState.ACTIVE else f"  [{snap.state.value}]"
            ctx = "" if want.context == self._default_context else f" @{want.context}"
            rows.append((self._label(want) + ctx, where, port + note))
        if not rows:
            return ["no Services to forward"]
        width = max(len(r[0]) for r in rows)
        wide = max(len(r[1]) for r in rows)
        lines = [f"{'NAME':<{width}}  {'ADDRESS:PORT':<{wide}}  SERVICE PORT"]
        lines += [f"{n:<{width}}  {w:<{wide}}  {p}" for n, w, p in rows]
        if self.many_addresses:
            lines.append("")
            lines.append("# hosts-file lines (or run with --hosts):")
            lines += [f"{a} {' '.join(names)}" for a, names in self.hosts_entries()]
        return [escape_controls(line) for line in lines]

    def hosts_entries(self) -> list[tuple[str, list[str]]]:
        """(address, names) per Service and headless pod; bare names for the first scope's."""
        first = self._watched[0].scope if self._watched else None
        seen: dict[str, list[str]] = {}
        for watched in self._watched:
            for want in self.forwards:
                if want.context != watched.context or want.namespace != watched.scope.namespace:
                    continue
                if want.address in seen:
                    continue
                seen[want.address] = host_names(
                    want.namespace,
                    want.service,
                    want.pod,
                    want.context,
                    default=want.context == self._default_context,
                    bare=watched.scope == first,
                )
        return sorted(seen.items(), key=lambda kv: kv[1][-1])


def _order(want: Want) -> tuple[str, str, str, str, int]:
    return (want.context, want.namespace, want.service, want.pod, want.port)
