"""Shared fixtures. Every server a test starts is stopped by its fixture, bounded in time."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest_asyncio

from portfwd.sandbox.cluster import SandboxCluster


@pytest_asyncio.fixture
async def sandbox() -> AsyncIterator[SandboxCluster]:
    """A started sandbox cluster with the demo topology (kubeconfig at .kubeconfig_path)."""
    cluster = SandboxCluster()
    await asyncio.wait_for(cluster.start(), 30)
    try:
        yield cluster
    finally:
        await asyncio.wait_for(cluster.stop(), 30)
