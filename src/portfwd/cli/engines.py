"""Which engine a script-facing command (`run`, `mcp`) drives: the daemon's when one runs,
else one in this process, the same `EngineAPI` either way.

What it adds it takes away again where the command's life ends (`run`: when COMMAND exits),
so nothing of a `portfwd run` outlives it in the daemon. Specs handed to the daemon are
pinned first (kubeconfig and context as of now, handover.py).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field

from portfwd.cli.handover import pin
from portfwd.daemon.client import RemoteEngine
from portfwd.daemon.replies import NotRunning
from portfwd.engine.api import EngineAPI
from portfwd.engine.manager import Manager
from portfwd.engine.model import ForwardSpec


@dataclass
class Engine:
    api: EngineAPI
    daemon: RemoteEngine | None  # None: the engine runs in this process
    added: list[str] = field(default_factory=list)  # ids this command added

    def prepare(self, specs: Sequence[ForwardSpec]) -> list[ForwardSpec]:
        """The specs as this engine takes them (pinned for the daemon)."""
        if self.daemon is None:
            return list(specs)
        return pin(specs, self.daemon.server.get("kubeconfig"))

    async def add(self, spec: ForwardSpec, *, start: bool) -> str:
        fid = await self.api.add(spec, start=start)
        self.added.append(fid)
        return fid

    async def remove_added(self) -> None:
        for fid in self.added:
            with contextlib.suppress(Exception):  # gone already, or the daemon is
                await self.api.remove(fid)
        self.added.clear()


@contextlib.asynccontextmanager
async def engine(
    *,
    client: str,
    here: bool,
    kubeconfig: str | None,
    ping_interval: float,
    keep: bool = False,
    logs: int = 0,
) -> AsyncIterator[Engine]:
    """The daemon's engine when one runs (and not `here`), else an in-process Manager. On
    the way out, the forwards added through `Engine.add` are removed (unless `keep`) and the
    engine let go (an in-process one stops everything). `logs`: recent lines per forward
    the daemon's engine mirrors from the start."""
    remote: RemoteEngine | None = None
    if not here:
        with contextlib.suppress(NotRunning):
            remote = await RemoteEngine.attach(client=client, logs=logs)
    api: EngineAPI = remote or Manager(kubeconfig=kubeconfig, ping_interval=ping_interval)
    used = Engine(api, remote)
    try:
        yield used
    finally:
        try:
            if not keep:
                await used.remove_added()
        finally:
            await api.shutdown()
