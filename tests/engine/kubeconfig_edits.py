"""What a user does to a kubeconfig under a running portfwd (kind recreating a cluster on
another port, a token rotated, a context deleted), and a connection that keeps moving bytes
meanwhile: shared by the engine's and the daemon's tests of following the kubeconfig."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

from portfwd.sandbox.cluster import SandboxCluster
from portfwd.sandbox.fleet import SandboxFleet
from portfwd.sandbox.kubeconfig import merge_kubeconfigs, write_config


def fleet_config(fleet: SandboxFleet, *, without: Iterable[str] = ()) -> dict[str, Any]:
    """The fleet's kubeconfig as its clusters are now (their ports, their tokens), without
    the contexts named in `without`."""
    config = merge_kubeconfigs([SandboxFleet._config(c) for c in fleet])
    dropped = set(without)
    config["contexts"] = [c for c in config["contexts"] if c["name"] not in dropped]
    return config


def rewrite_in_place(path: Path, config: dict[str, Any]) -> None:
    """Truncate and write the same file (same inode), as `kubectl config set-cluster` does."""
    with open(path, "w", encoding="utf-8") as f:
        f.write(yaml.safe_dump(config, sort_keys=False))


def replace_atomically(path: Path, config: dict[str, Any]) -> None:
    """A new file renamed over the old one, as kind and most editors do."""
    write_config(path, config)


async def restart_elsewhere(cluster: SandboxCluster) -> None:
    """The cluster's API server stops and comes back on another port (the old one is held
    meanwhile, so the kernel cannot hand it out again); its pods and CA stay."""
    old = cluster.port
    await cluster.stop_api()
    holder = socket.socket()
    try:
        holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        holder.bind((cluster.host, old))
        cluster.port = 0
        await cluster.start_api()
    finally:
        holder.close()
    assert cluster.port != old


async def echo_once(port: int, size: int = 50_000) -> None:
    """A new connection to 127.0.0.1:PORT echoes `size` random bytes back."""
    payload = os.urandom(size)
    async with asyncio.timeout(30):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            writer.write(payload)
            await writer.drain()
            assert await reader.readexactly(size) == payload
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()


class Pump:
    """One connection through an echo forward moving bytes until stopped: `rounds` grows
    while it flows, `error` says why it stopped flowing (None: it never did)."""

    CHUNK = 4096

    def __init__(self, port: int) -> None:
        self.port = port
        self.rounds = 0
        self.error: BaseException | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", self.port), 10)
        self._task = asyncio.create_task(self._run(reader, writer))

    async def _run(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                payload = os.urandom(self.CHUNK)
                writer.write(payload)
                await writer.drain()
                echoed = await asyncio.wait_for(reader.readexactly(self.CHUNK), 30)
                if echoed != payload:
                    raise AssertionError("the echo came back different")
                self.rounds += 1
                await asyncio.sleep(0.01)  # pacing only: a steady trickle, not a busy loop
        except asyncio.CancelledError:
            raise
        except BaseException as exc:
            self.error = exc
        finally:
            writer.close()

    async def flowing(self) -> None:
        """Until more rounds went through (a stalled or broken pump fails the test)."""
        mark = self.rounds
        async with asyncio.timeout(30):
            while self.rounds <= mark + 2:
                assert self.error is None, f"the other context's connection broke: {self.error!r}"
                await asyncio.sleep(0.02)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        assert self.error is None, f"the other context's connection broke: {self.error!r}"
