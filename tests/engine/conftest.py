"""Engine fixtures without a cluster: a fake kubelet behind a fake client pool, and a
`resolve` replaced by one that can be made slow or failing."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import pytest_asyncio

from portfwd.engine import forward as forward_mod
from portfwd.engine import target_follow
from portfwd.engine.manager import Manager
from portfwd.errors import ResolveError
from portfwd.kube.objects import ObjectMeta, Pod
from portfwd.kube.resolve import Resolution
from portfwd.kube.targets import Target
from tests.support.wait import eventually  # noqa: F401  (tests/faults and tests/sandbox import it from here)

from ..tunnel.fakes import FakeClient, FakeKubelet, echo_server

POD_PORT = 9000


class FakePool:
    def __init__(self, client: FakeClient) -> None:
        self.client = client
        self.closed = False

    async def get(self, context: str | None = None, kubeconfig: str | None = None) -> Any:
        return self.client

    async def close(self) -> None:
        self.closed = True
        await self.client.close()


@dataclass
class FakeResolver:
    gate: asyncio.Event | None = None  # when set: resolve waits for it
    fail: str | None = None
    calls: list[tuple[str, Target, int | str]] = field(default_factory=list)

    async def __call__(self, client: Any, ns: str, target: Target, remote: int | str) -> Resolution:
        self.calls.append((ns, target, remote))
        if self.gate is not None:
            await self.gate.wait()
        if self.fail:
            raise ResolveError(self.fail)
        pod = Pod(meta=ObjectMeta(name="echo-1", namespace=ns), phase="Running")
        return Resolution(
            pod=pod,
            container_port=POD_PORT,
            port_name="echo",
            protocol="TCP",
            decisions=(f"{target} port {remote} -> pod echo-1 port {POD_PORT}",),
        )


@dataclass
class Env:
    manager: Manager
    kubelet: FakeKubelet
    resolver: FakeResolver
    pool: FakePool


@pytest_asyncio.fixture
async def env(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Env]:
    resolver = FakeResolver()
    monkeypatch.setattr(forward_mod, "resolve", resolver)
    monkeypatch.setattr(target_follow, "resolve", resolver)  # the follow loop asks again
    async with echo_server() as echo:
        kubelet = FakeKubelet(backends={POD_PORT: echo})
        await kubelet.start()
        pool = FakePool(FakeClient(kubelet.url))
        # The fake kubelet speaks v4 only, which cannot tell the pod that a client closed:
        # a short limit ends those connections (the default is 30 s).
        manager = Manager(clients=pool, v4_eof_idle_limit=0.3)  # type: ignore[arg-type]
        try:
            yield Env(manager, kubelet, resolver, pool)
        finally:
            await asyncio.wait_for(manager.shutdown(), 10)
            await kubelet.stop()
