"""Shared fixtures. Every server a test starts is stopped by its fixture, bounded in time."""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator

import pytest
import pytest_asyncio
from hypothesis import settings

from portfwd.engine.manager import Manager
from portfwd.sandbox.cluster import SandboxCluster
from portfwd.sandbox.fleet import SandboxFleet
from tests.support.ports import release_held_ports

# No per-example deadline: the suite runs on loaded shared machines, where a slow example is
# the machine, not the code (a deadline is a timing threshold, and those live in bench/).
settings.register_profile("portfwd", deadline=None)
settings.load_profile("portfwd")


@pytest_asyncio.fixture
async def sandbox() -> AsyncIterator[SandboxCluster]:
    """A started sandbox cluster with the demo topology (kubeconfig at .kubeconfig_path)."""
    cluster = SandboxCluster()
    await asyncio.wait_for(cluster.start(), 30)
    try:
        yield cluster
    finally:
        await asyncio.wait_for(cluster.stop(), 30)


@pytest_asyncio.fixture
async def manager(sandbox: SandboxCluster) -> AsyncIterator[Manager]:
    """A Manager on the `sandbox` cluster, shut down after the test (a module that needs
    other Manager arguments defines its own)."""
    mgr = Manager(kubeconfig=str(sandbox.kubeconfig_path))
    try:
        yield mgr
    finally:
        await asyncio.wait_for(mgr.shutdown(), 20)


@pytest_asyncio.fixture
async def sandbox_pair() -> AsyncIterator[SandboxFleet]:
    """Two independent sandbox clusters (contexts `sandbox` and `sandbox-2`, each its own API
    server, CA and pods) and one kubeconfig with both at `.kubeconfig_path`.

    `sandbox_pair[1].stop_api()` takes the second one's API server away (its forwards
    reconnect), `.start_api()` brings it back on the same port; GET /cluster on an HTTP
    backend (svc/web) answers the cluster's name."""
    fleet = SandboxFleet(2)
    await asyncio.wait_for(fleet.start(), 60)
    try:
        yield fleet
    finally:
        await asyncio.wait_for(fleet.stop(), 60)


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


@pytest.fixture(autouse=True)
def _release_held_ports() -> Iterator[None]:
    """The ports a test held (tests/support/ports.py) are free again after it."""
    try:
        yield
    finally:
        release_held_ports()
