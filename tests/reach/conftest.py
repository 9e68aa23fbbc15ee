"""Fixtures of the proxy tests: a proxy serving both clusters of a sandbox pair, and curl."""

from __future__ import annotations

import asyncio
import struct
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest_asyncio

from portfwd.engine.dial import Dialer
from portfwd.engine.manager import Manager
from portfwd.reach.proxy import ProxyServer
from portfwd.sandbox.fleet import SandboxFleet
from portfwd.tunnel.addresses import BindAddress
from tests.support.curl import curl as curl


@dataclass
class Proxy:
    server: ProxyServer
    fleet: SandboxFleet
    log: list[str]

    @property
    def where(self) -> str:
        return f"127.0.0.1:{self.server.port}"


@pytest_asyncio.fixture
async def proxy(sandbox_pair: SandboxFleet) -> AsyncIterator[Proxy]:
    manager = Manager(kubeconfig=str(sandbox_pair.kubeconfig_path))
    assert manager.informers is not None
    dialer = Dialer(manager.informers, manager.tunnels)
    log: list[str] = []
    try:
        clients = {name: await manager.clients.get(name, None) for name in ("sandbox", "sandbox-2")}
        server = ProxyServer(dialer, clients, "sandbox", pac=True, on_log=log.append)
        await server.start(BindAddress("127.0.0.1", True), 0)
        try:
            yield Proxy(server, sandbox_pair, log)
        finally:
            await asyncio.wait_for(server.close(), 10)
    finally:
        dialer.close()
        await asyncio.wait_for(manager.shutdown(), 20)


async def socks_open(
    where: str, host: str, port: int
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A SOCKS5 CONNECT by name (what socks5h clients send)."""
    address, _, proxy_port = where.rpartition(":")
    reader, writer = await asyncio.open_connection(address, int(proxy_port))
    writer.write(b"\x05\x01\x00")
    assert await reader.readexactly(2) == b"\x05\x00"
    name = host.encode()
    writer.write(b"\x05\x01\x00\x03" + bytes([len(name)]) + name + struct.pack("!H", port))
    answer = await reader.readexactly(10)
    assert answer[1] == 0, f"SOCKS5 reply {answer[1]}"
    return reader, writer
