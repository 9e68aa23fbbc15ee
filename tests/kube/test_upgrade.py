"""Port-forward upgrades portfwd makes itself (plain SPDY over a POST), through an HTTP
CONNECT proxy like the ones in front of corporate clusters, and what a refusal says."""

from __future__ import annotations

import asyncio
import base64
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from portfwd.engine.manager import Manager
from portfwd.engine.model import ForwardSpec, ForwardState
from portfwd.kube.client import KubeClient
from portfwd.kube.config import load_connection
from portfwd.kube.errors import ClusterUnreachable, Forbidden
from portfwd.sandbox.cluster import SandboxCluster
from tests.support.echo import echo_once


@dataclass
class ConnectProxy:
    """A minimal HTTP proxy: CONNECT only, optional Basic auth, then bytes both ways."""

    credentials: str | None = None  # "user:password" it demands
    requests: list[tuple[str, str]] = field(default_factory=list)  # (target, auth header)
    port: int = 0
    _server: asyncio.Server | None = None
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)

    async def __aenter__(self) -> ConnectProxy:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
            method, target, _ = head[0].split(" ", 2)
            auth = next(
                (h.split(":", 1)[1].strip() for h in head if h.lower().startswith("proxy-auth")),
                "",
            )
            self.requests.append((target, auth))
            wanted = (
                "Basic " + base64.b64encode(self.credentials.encode()).decode()
                if self.credentials
                else None
            )
            if method != "CONNECT" or (wanted is not None and auth != wanted):
                writer.write(b"HTTP/1.1 407 Proxy Authentication Required\r\n\r\n")
                await writer.drain()
                return
            host, _, port = target.rpartition(":")
            up_reader, up_writer = await asyncio.open_connection(host.strip("[]"), int(port))
            writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
            await writer.drain()

            async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
                with contextlib.suppress(ConnectionError):
                    while data := await src.read(65536):
                        dst.write(data)
                        await dst.drain()
                dst.close()

            await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()
            self._tasks.discard(task)


def _via_proxy(sandbox: SandboxCluster, dst: Path, proxy_url: str) -> Path:
    config: dict[str, Any] = yaml.safe_load(sandbox.kubeconfig_path.read_text())
    for cluster in config["clusters"]:
        cluster["cluster"]["proxy-url"] = proxy_url
    dst.write_text(yaml.safe_dump(config))
    dst.chmod(0o600)
    return dst


@contextlib.asynccontextmanager
async def _forward(kubeconfig: Path, protocol: str) -> AsyncIterator[tuple[Manager, str]]:
    manager = Manager(kubeconfig=str(kubeconfig))
    try:
        fid = await manager.add(ForwardSpec(target="svc/echo", remote_port=80, protocol=protocol))
        yield manager, fid
    finally:
        await asyncio.wait_for(manager.shutdown(), 20)


@pytest.mark.parametrize("protocol", ["spdy", "websocket"])
async def test_a_session_goes_through_an_authenticating_connect_proxy(
    sandbox: SandboxCluster, tmp_path: Path, protocol: str
) -> None:
    async with ConnectProxy(credentials="me:s3cr%t") as proxy:
        url = f"http://me:s3cr%25t@127.0.0.1:{proxy.port}"
        kubeconfig = _via_proxy(sandbox, tmp_path / "kubeconfig", url)
        async with _forward(kubeconfig, protocol) as (manager, fid):
            snap = manager.get(fid)
            assert snap.state is ForwardState.ACTIVE, snap.reason
            assert await echo_once(snap.local_port, b"through the proxy") == b"through the proxy"
        target = f"127.0.0.1:{sandbox.port}"
        expected = "Basic " + base64.b64encode(b"me:s3cr%t").decode()
        assert (target, expected) in proxy.requests


async def test_a_proxy_refusal_names_the_proxy(sandbox: SandboxCluster, tmp_path: Path) -> None:
    async with ConnectProxy(credentials="me:right") as proxy:
        url = f"http://me:wrong@127.0.0.1:{proxy.port}"
        conn = load_connection(str(_via_proxy(sandbox, tmp_path / "kc", url)), None, None)
        async with KubeClient(conn) as client:
            with pytest.raises(ClusterUnreachable) as info:
                await client.open_spdy_upgrade("demo", "any")
    assert info.value.cause == "proxy"
    assert str(info.value).startswith("the proxy for the Kubernetes API at https://127.0.0.1:")
    assert "(407 to CONNECT 127.0.0.1:" in str(info.value)
    assert "wrong" not in str(info.value)  # never the password


async def test_a_refused_spdy_upgrade_carries_the_servers_words(sandbox: SandboxCluster) -> None:
    """The body of a refused POST is at hand (no replay needed, unlike a WebSocket)."""
    conn = load_connection(str(sandbox.kubeconfig_path), "sandbox-pf-get", None)
    pod = sandbox.pod_names("demo", {"app": "echo"})[0]
    async with KubeClient(conn) as client:
        with pytest.raises(Forbidden) as info:
            await client.open_spdy_upgrade("demo", pod)
    assert str(info.value) == (
        'user "pf-get" may not create pods/portforward in namespace "demo" (403 Forbidden, '
        'context "sandbox-pf-get"); ask your cluster admin for a Role granting both "get" and '
        '"create" on pods/portforward'
    )
    assert "cannot create resource" in info.value.api_message
