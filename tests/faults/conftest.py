"""Fault-test fixtures: sandbox clusters and Managers that are always stopped, bounded waits,
and small clients that check the bytes they get back."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest_asyncio

from portfwd.engine.events import ForwardChanged, Lagged
from portfwd.engine.manager import Manager, Subscription
from portfwd.engine.model import ForwardState
from portfwd.sandbox.cluster import SandboxCluster

from ..engine.conftest import eventually
from ..faultproxy import FaultProxy, kubeconfig_via

__all__ = ["eventually"]  # re-exported for the fault tests

LOOPBACK = "127.0.0.1"

SandboxFactory = Callable[..., Awaitable[SandboxCluster]]
ManagerFactory = Callable[..., Manager]
ProxyFactory = Callable[..., Awaitable[tuple[FaultProxy, Path]]]


@pytest_asyncio.fixture
async def make_sandbox() -> AsyncIterator[SandboxFactory]:
    """Start sandbox clusters with any options; every one is stopped at the end."""
    started: list[SandboxCluster] = []

    async def make(**kwargs: Any) -> SandboxCluster:
        cluster = SandboxCluster(**kwargs)
        started.append(cluster)
        await asyncio.wait_for(cluster.start(), 30)
        return cluster

    try:
        yield make
    finally:
        for cluster in reversed(started):
            await asyncio.wait_for(cluster.stop(), 30)


@pytest_asyncio.fixture
async def make_manager() -> AsyncIterator[ManagerFactory]:
    """Managers with any options; every one is shut down at the end."""
    made: list[Manager] = []

    def make(**kwargs: Any) -> Manager:
        mgr = Manager(**kwargs)
        made.append(mgr)
        return mgr

    try:
        yield make
    finally:
        for mgr in reversed(made):
            await asyncio.wait_for(mgr.shutdown(), 10)


@pytest_asyncio.fixture
async def make_proxy() -> AsyncIterator[ProxyFactory]:
    """A FaultProxy in front of a sandbox's API server and a kubeconfig through it."""
    proxies: list[FaultProxy] = []

    async def make(
        cluster: SandboxCluster, dst: Path, idle_timeout: float | None = None
    ) -> tuple[FaultProxy, Path]:
        proxy = FaultProxy(cluster.host, cluster.port, idle_timeout=idle_timeout)
        proxies.append(proxy)
        port = await proxy.start()
        return proxy, kubeconfig_via(cluster.kubeconfig_path, dst, port)

    try:
        yield make
    finally:
        for proxy in proxies:
            await asyncio.wait_for(proxy.stop(), 10)


async def wait_state(
    manager: Manager,
    sub: Subscription,
    fid: str,
    states: ForwardState | tuple[ForwardState, ...],
    limit: float = 10.0,
) -> None:
    """Wait, on the Manager's events (no polling), until forward `fid` is in one of `states`."""
    wanted = states if isinstance(states, tuple) else (states,)
    async with asyncio.timeout(limit):
        if manager.get(fid).state in wanted:
            return
        while True:
            event = await sub.get()
            if isinstance(event, Lagged):
                if manager.get(fid).state in wanted:
                    return
            elif (
                isinstance(event, ForwardChanged)
                and event.snapshot.id == fid
                and event.snapshot.state in wanted
            ):
                return


def drain(sub: Subscription) -> None:
    """Drop what a subscription has queued (events before the step a test waits for)."""
    while sub.get_nowait() is not None:
        pass


async def close_writer(writer: asyncio.StreamWriter) -> None:
    writer.close()
    with contextlib.suppress(OSError, TimeoutError):
        async with asyncio.timeout(5):
            await writer.wait_closed()


async def echo_once(port: int, payload: bytes = b"ping", limit: float = 10.0) -> bytes:
    """Connect, send `payload`, read as many bytes back (fewer at EOF), close."""
    async with asyncio.timeout(limit):
        reader, writer = await asyncio.open_connection(LOOPBACK, port)
        try:
            writer.write(payload)
            await writer.drain()
            got = bytearray()
            while len(got) < len(payload):
                chunk = await reader.read(len(payload) - len(got))
                if not chunk:
                    break
                got += chunk
            return bytes(got)
        finally:
            await close_writer(writer)


async def echo_big(port: int, size: int, seed: int = 0, limit: float = 30.0) -> bool:
    """Send `size` pseudo-random bytes through an echo backend while reading them back;
    True when every byte came back in order."""
    payload = bytes((i * 7 + seed) % 256 for i in range(256)) * (size // 256)
    async with asyncio.timeout(limit):
        reader, writer = await asyncio.open_connection(LOOPBACK, port)
        try:

            async def send() -> None:
                view = memoryview(payload)
                for off in range(0, len(view), 64 * 1024):
                    writer.write(view[off : off + 64 * 1024])
                    await writer.drain()

            sender = asyncio.create_task(send())
            try:
                got = await reader.readexactly(len(payload))
            finally:
                sender.cancel()
                await asyncio.gather(sender, return_exceptions=True)
            return got == payload
        finally:
            await close_writer(writer)


def _deployment(name: str, replicas: int, ports: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "name": name,
        "replicas": replicas,
        "labels": {"app": name},
        "containers": [{"name": name, "image": f"sandbox/{name}:1", "ports": ports}],
    }


ECHO_PORT = {"name": "echo", "containerPort": 9000, "backend": "echo"}
HTTP_PORT = {"name": "http", "containerPort": 8080, "backend": "http"}
FLAKY = 10  # bare pods flaky-0.. with an echo backend, for churn
FAKE_MB = 1024 * 1024

# ns "f": solo (1 replica, http + echo), trio (3 replicas, echo), flaky-N bare echo pods.
FAULT_TOPOLOGY: dict[str, Any] = {
    "namespaces": [
        {
            "name": "f",
            "deployments": [
                _deployment("solo", 1, [HTTP_PORT, ECHO_PORT]),
                _deployment("trio", 3, [ECHO_PORT]),
            ],
            "pods": [
                {"name": f"flaky-{i}", "labels": {"app": "flaky"}, "ports": [ECHO_PORT]}
                for i in range(FLAKY)
            ],
            "services": [
                {
                    "name": "solo",
                    "selector": {"app": "solo"},
                    "ports": [
                        {"name": "http", "port": 80, "targetPort": "http"},
                        {"name": "echo", "port": 9000, "targetPort": "echo"},
                    ],
                },
                {
                    "name": "trio",
                    "selector": {"app": "trio"},
                    "ports": [{"name": "tcp", "port": 80, "targetPort": "echo"}],
                },
            ],
        }
    ]
}
