"""Several forwards whose targets resolve to one pod share its tunnels: no connection is lost.

The race this guards against: a pair of streams was taken from a pod's session but not yet on
the wire when another forward (on another protocol) retired that session ("no longer used"),
so the connection got nothing back. Every connection here must get its whole echo back.
"""

from __future__ import annotations

import asyncio
import random

import pytest

from portfwd.engine.manager import Manager
from portfwd.engine.model import ForwardSpec, ForwardState
from portfwd.sandbox.cluster import SandboxCluster

PROTOCOLS = ("auto", "spdy", "websocket", "spdy")


async def _echo(port: int, size: int, half_close: bool, rng: random.Random) -> int:
    """One echo transfer; returns how many bytes came back (all of them, or the test fails)."""
    payload = rng.randbytes(size)
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        if half_close:
            writer.write(payload)
            await writer.drain()
            writer.write_eof()
            got = await reader.readexactly(size)
        else:
            # Full duplex: write in pieces while reading.
            async def send() -> None:
                for i in range(0, size, 16384):
                    writer.write(payload[i : i + 16384])
                    await writer.drain()

            sender = asyncio.create_task(send())
            got = await reader.readexactly(size)
            await sender
        assert got == payload
        return len(got)
    finally:
        writer.close()


@pytest.mark.parametrize("seed", [1, 2])
async def test_forwards_on_one_pod_lose_no_connection(
    manager: Manager, sandbox: SandboxCluster, seed: int
) -> None:
    # svc/echo has one pod (pod/echo): every forward lands on it.
    ports = []
    for protocol in PROTOCOLS:
        fid = await manager.add(ForwardSpec(target="svc/echo", remote_port=80, protocol=protocol))
        snap = manager.get(fid)
        assert snap.state is ForwardState.ACTIVE, snap.reason
        ports.append(snap.local_port)
    pods = {manager.get(s.id).pod for s in manager.snapshot()}
    assert len(pods) == 1

    rng = random.Random(seed)
    lost: list[str] = []

    async def client(n: int) -> None:
        crng = random.Random(seed * 1000 + n)
        for _ in range(25):
            port = crng.choice(ports)
            size = crng.choice((1, 1024, 65536, 300_000))
            try:
                await asyncio.wait_for(_echo(port, size, crng.random() < 0.5, crng), 30)
            except (OSError, asyncio.IncompleteReadError, TimeoutError) as exc:
                lost.append(f"port {port}, {size} bytes: {exc!r}")
            await asyncio.sleep(crng.random() * 0.02)

    await asyncio.gather(*(client(n) for n in range(8 + rng.randrange(3))))
    assert lost == []
    # One session per carrier to the pod (SPDY in a WebSocket, plain SPDY), kept: the
    # forwards did not take turns replacing each other's.
    assert manager.tunnels.sessions_opened == 2
