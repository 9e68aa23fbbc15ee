"""Shared fixtures. Every server a test starts is stopped by its fixture, bounded in time."""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator

import pytest
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


@pytest.fixture(autouse=True, scope="session")
def _private_daemon_dir() -> Iterator[None]:
    """No test ever talks to the developer's own daemon: a dashboard started by a test (and
    the CLI clients) look for one in a runtime dir of the test run's own."""
    runtime = tempfile.mkdtemp(prefix="pfr-", dir="/tmp")
    old = os.environ.get("PORTFWD_RUNTIME_DIR")
    os.environ["PORTFWD_RUNTIME_DIR"] = os.path.join(runtime, "run")
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("PORTFWD_RUNTIME_DIR", None)
        else:
            os.environ["PORTFWD_RUNTIME_DIR"] = old
        shutil.rmtree(runtime, ignore_errors=True)
