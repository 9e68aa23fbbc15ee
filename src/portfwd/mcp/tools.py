"""What the MCP tools do, without the SDK: plain data in, plain data out, `ToolProblem` (one
line an agent can act on, the CLI's own words) for everything expected.

Inputs go through the CLI's parsers (`add_specs`, ForwardSpec's checks, the profile loader), so
an agent gets the message a user would. Forwards added here follow the CLI's start policy
(engine/launch.py): one that cannot start now is not added, its reason is the tool's error.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from portfwd.cli.add import add_specs
from portfwd.cli.bound import entry
from portfwd.cli.engines import Engine
from portfwd.cli.idle_options import idle_fields, with_idle
from portfwd.cli.ready import is_ready
from portfwd.doctor import local
from portfwd.doctor.cluster import cluster_checks
from portfwd.doctor.daemon import daemon_check
from portfwd.engine.api import find
from portfwd.engine.clients import ClientPool
from portfwd.engine.launch import launch, reason_of
from portfwd.engine.model import ForwardSnapshot, ForwardSpec, ForwardState
from portfwd.errors import PortfwdError
from portfwd.safetext import escape_controls
from portfwd.store.profiles import default_profiles_file, load_profiles
from portfwd.store.profiles_select import UpUsageError, select

MAX_LOG_LINES = 1000
STOP_SEEN = 5.0  # seconds a stop may take to show in the daemon's mirror


class ToolProblem(PortfwdError):
    """The tool's error for the agent: one line, what was wrong and what to do."""


@dataclass
class Settings:
    """What the user chose when starting the server (its command line in the agent's config)."""

    kubeconfig: str | None = None
    context: str | None = None
    namespace: str | None = None
    profiles_file: Path | None = None
    allow_non_loopback: bool = False  # forwards may listen on other addresses than loopback
    protocol: str = "auto"


@dataclass
class Tools:
    engine: Engine
    settings: Settings
    _clients: ClientPool | None = field(default=None, repr=False)

    async def close(self) -> None:
        if self._clients is not None:
            await self._clients.close()

    # -- forwards ---------------------------------------------------------------------------

    def list_forwards(self) -> dict[str, Any]:
        return {"forwards": [describe(s) for s in self.engine.api.snapshot()]}

    async def add_forward(
        self,
        target: str,
        ports: Sequence[str],
        *,
        namespace: str | None,
        context: str | None,
        name: str | None,
        address: str,
        start: bool,
        spread: bool,
        lazy: bool = False,
    ) -> dict[str, Any]:
        if not ports:
            raise ToolProblem("no port given: expected [LOCAL:]REMOTE, e.g. 8080:80 or :80")
        specs = self._checked(
            add_specs(
                target=target,
                ports=tuple(ports),
                addresses=address,
                name=name,
                reconnect=True,
                kubeconfig=self.settings.kubeconfig,
                context=context or self.settings.context,
                namespace=namespace or self.settings.namespace,
                protocol=self.settings.protocol,
                spread=spread,
            )
        )
        specs = with_idle(specs, idle_fields(lazy, None, None))
        return {"forwards": [describe(s) for s in await self._launch(specs, start=start)]}

    def _checked(self, specs: list[ForwardSpec]) -> list[ForwardSpec]:
        if self.settings.allow_non_loopback:
            return specs
        for spec in specs:
            for bind in spec.bind_addresses:
                if not bind.loopback:
                    raise ToolProblem(
                        f"address {bind.host} is not a loopback address: this MCP server lets "
                        "forwards listen on loopback only (the user can start it with "
                        "--allow-non-loopback)"
                    )
        return specs

    async def _launch(self, specs: list[ForwardSpec], *, start: bool) -> list[ForwardSnapshot]:
        engine = self.engine.api
        specs = self.engine.prepare(specs)
        if not start:
            return [engine.get(await engine.add(spec, start=False)) for spec in specs]
        launched = await launch(engine, specs)
        if launched.failed:
            first = launched.failed[0]
            who = f"{first.spec.name}: " if first.spec.name else ""
            added = " (none was added)" if not launched.active else ""
            raise ToolProblem(
                f"{who}{first.spec.target} {first.spec.remote_port}: {reason_of(first)}; "
                f"not added{added}"
            )
        return launched.active

    def _find(self, key: str) -> ForwardSnapshot:
        try:
            return find(self.engine.api, key)
        except KeyError:
            raise ToolProblem(
                f"no forward has the name or id {escape_controls(key)!r}; list_forwards lists them"
            ) from None

    async def start_forward(self, key: str) -> dict[str, Any]:
        snap = await self.engine.api.start(self._find(key).id)
        return describe(snap)

    async def stop_forward(self, key: str) -> dict[str, Any]:
        fid = self._find(key).id
        await self.engine.api.stop(fid)
        return describe(await self._stopped(fid))

    async def _stopped(self, fid: str) -> ForwardSnapshot:
        """The forward once the engine's view shows it stopped (the daemon's mirror follows
        its events, a moment after the reply), bounded: the last view after that."""
        events = self.engine.api.subscribe()
        stream = events.__aiter__()
        try:
            async with asyncio.timeout(STOP_SEEN):
                while self.engine.api.get(fid).state is not ForwardState.STOPPED:
                    await stream.__anext__()
        except (TimeoutError, StopAsyncIteration):
            pass
        finally:
            events.close()
        return self.engine.api.get(fid)

    async def remove_forward(self, key: str) -> dict[str, Any]:
        snap = self._find(key)
        await self.engine.api.remove(snap.id)
        return {"removed": snap.spec.name or snap.id}

    def forward_logs(self, key: str, lines: int) -> dict[str, Any]:
        if not 1 <= lines <= MAX_LOG_LINES:
            raise ToolProblem(f"lines {lines} is out of range; use 1..{MAX_LOG_LINES}")
        snap = self._find(key)
        entries = self.engine.api.logs(snap.id)[-lines:]
        return {
            "forward": snap.spec.name or snap.id,
            "lines": [
                {
                    "ts": e.ts,
                    "level": e.level.name.lower(),
                    "kind": e.kind.value,
                    "message": e.message,
                }
                for e in entries
            ],
        }

    # -- profiles ---------------------------------------------------------------------------

    def _profile_specs(self, profile: str, groups: Sequence[str]) -> list[ForwardSpec]:
        try:
            chosen = select(
                self.settings.profiles_file,
                profile,
                groups,
                kubeconfig=self.settings.kubeconfig,
                context=self.settings.context,
                namespace=self.settings.namespace,
                protocol=self.settings.protocol,
            )
        except UpUsageError as exc:
            raise ToolProblem("; ".join(exc.lines)) from None
        if not chosen.specs:
            raise ToolProblem(
                f"profile {profile!r} has no forwards (whole namespaces: use the CLI)"
            )
        return self._checked(chosen.specs)

    async def start_profile(self, profile: str, groups: Sequence[str]) -> dict[str, Any]:
        specs = self._profile_specs(profile, groups)
        have = {s.spec.name: s for s in self.engine.api.snapshot() if s.spec.name}
        kept: list[ForwardSnapshot] = []
        todo: list[ForwardSpec] = []
        for spec in specs:
            there = have.get(spec.name) if spec.name else None
            if there is None:
                todo.append(spec)
            else:
                kept.append(await self.engine.api.start(there.id))
        started = await self._launch(todo, start=True) if todo else []
        return {"forwards": [describe(s) for s in [*kept, *started]]}

    async def stop_profile(self, profile: str, groups: Sequence[str]) -> dict[str, Any]:
        names = {spec.name for spec in self._profile_specs(profile, groups)}
        stopped = []
        for snap in self.engine.api.snapshot():
            if snap.spec.name in names:
                await self.engine.api.stop(snap.id)
                stopped.append(snap.spec.name)
        return {"stopped": sorted(n for n in stopped if n)}

    def profiles(self) -> dict[str, Any]:
        loaded = load_profiles(self.settings.profiles_file or default_profiles_file())
        result: dict[str, Any] = {"file": loaded.path, "profiles": []}
        for name in loaded.names:
            prof = loaded.profiles.get(name)
            if prof is None:
                result["profiles"].append({"name": name, "broken": True})
                continue
            result["profiles"].append(
                {
                    "name": name,
                    "description": prof.description,
                    "groups": {g: list(members) for g, members in prof.groups.items()},
                    "forwards": [
                        {"name": f.name, "target": f.target, "ports": list(f.ports)}
                        for f in prof.forwards
                    ],
                    "namespaces": [n.namespace for n in prof.namespaces],
                }
            )
        result["problems"] = [str(p) for p in loaded.problems]
        return result

    # -- the cluster ------------------------------------------------------------------------

    async def list_services(self, namespace: str | None, context: str | None) -> dict[str, Any]:
        if self._clients is None:
            self._clients = ClientPool(self.settings.kubeconfig)
        client = await self._clients.get(context or self.settings.context)
        ns = namespace or self.settings.namespace or client.namespace
        services = await client.list_services(ns)
        return {
            "namespace": ns,
            "services": [
                {
                    "name": svc.name,
                    "target": f"svc/{svc.name}",
                    "ports": [
                        {
                            "port": p.port,
                            "name": p.name,
                            "protocol": p.protocol,
                            "target_port": p.target_port or p.port,
                        }
                        for p in svc.ports
                    ],
                }
                for svc in sorted(services, key=lambda s: s.name)
            ],
        }

    async def doctor(self, context: str | None, namespace: str | None) -> dict[str, Any]:
        checks = await cluster_checks(
            self.settings.kubeconfig,
            context or self.settings.context,
            namespace or self.settings.namespace,
        )
        checks += [local.ipv6_loopback(), local.privileged_ports()]
        checks.append(await asyncio.to_thread(daemon_check))
        return {
            "ok": not any(c.status == "fail" for c in checks),
            "checks": [c.to_dict() for c in checks],
        }


def describe(snap: ForwardSnapshot) -> dict[str, Any]:
    """One forward as list_forwards shows it: where it listens (bound.py's fields) and its
    health."""
    data = entry(snap)
    data.update(
        ready=is_ready(snap),
        reason=snap.reason,
        context=snap.context or snap.spec.context or "",
        namespace=snap.namespace or snap.spec.namespace or "",
        pod=snap.pod,
        tunnel=snap.tunnel,
        connections_open=snap.stats.connections_open,
        connections_total=snap.stats.connections_total,
        bytes_in=snap.stats.bytes_in,
        bytes_out=snap.stats.bytes_out,
        reconnects=snap.stats.reconnects,
    )
    return data
