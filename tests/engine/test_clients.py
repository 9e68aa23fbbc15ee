"""ClientPool: one KubeClient per (kubeconfig, context); failures are not cached."""

from __future__ import annotations

import asyncio

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
