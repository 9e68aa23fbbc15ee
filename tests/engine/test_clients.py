"""ClientPool: one KubeClient per (kubeconfig, context); failures are not cached."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from portfwd.engine.clients import ClientPool
from portfwd.errors import ConfigError
from portfwd.sandbox.cluster import SandboxCluster


async def test_clients_shared_per_context(sandbox: SandboxCluster) -> None:
    pool = ClientPool(str(sandbox.kubeconfig_path))
    try:
        a, b = await asyncio.gather(pool.get(), pool.get())
        assert a is b and a.context == "sandbox" and a.namespace == "demo"
        viewer = await pool.get("sandbox-viewer")
        assert viewer is not a and viewer.context == "sandbox-viewer"
        assert (await a.version())["gitVersion"]
        with pytest.raises(ConfigError, match='context "nope" not found'):
            await pool.get("nope")
        with pytest.raises(ConfigError, match='context "nope" not found'):
            await pool.get("nope")
    finally:
        await pool.close()
    with pytest.raises(RuntimeError):
        await pool.get()


class _FakeClient:
    closed = False

    async def close(self) -> None:
        self.closed = True


async def test_failed_load_does_not_drop_a_newer_one() -> None:
    """A caller of a failed load must not forget the load another caller started since: that
    client would never be closed."""
    pool = ClientPool("unused", watch=False)
    failing = asyncio.Event()
    fresh = _FakeClient()
    loads = 0

    async def load(slot: Any) -> Any:
        nonlocal loads
        loads += 1
        if loads == 1:
            failing.set()  # wakes the second caller before the first learns of the failure
            raise ConfigError("first load fails")
        slot.client = fresh
        return fresh

    async def second_caller() -> Any:
        await failing.wait()
        return await pool.get("ctx")

    pool._load = load  # type: ignore[method-assign]
    second = asyncio.create_task(second_caller())
    with pytest.raises(ConfigError):
        await pool.get("ctx")
    assert await asyncio.wait_for(second, 5) is fresh
    await pool.close()
    assert fresh.closed
