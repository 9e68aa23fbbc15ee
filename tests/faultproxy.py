"""A loopback TCP proxy that injects network faults between portfwd and the sandbox API server.

It copies bytes, so TLS passes through untouched: point a kubeconfig at it with
`kubeconfig_via` and every API call, watch and port-forward tunnel goes through the proxy.

Faults:
- `freeze()`: every existing connection stops moving bytes both ways (FIN included) and stays
  open, as when a laptop sleeps or a NAT entry dies; `thaw()` lets them move again. New
  connections are not frozen.
- `cut()`: every existing connection is aborted with a RST on both sides (`cut_from(ports)`:
  only those from these client ports, e.g. one SPDY session's).
- `refusing = True`: new connections are reset at once (the API server is down).
- `idle_timeout`: a connection with no bytes either way for that long is closed on both sides,
  as a cloud load balancer does.

Buffers are bounded (a StreamReader's limit plus one chunk in flight per direction, with
`drain()`), and every task is owned and cancelled and awaited by `stop()`.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import yaml

CHUNK = 64 * 1024
LOOPBACK = "127.0.0.1"


def _reset(writer: asyncio.StreamWriter) -> None:
    """Abort with a RST (SO_LINGER 0), not a FIN."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


class _Conn:
    """One proxied connection: its two sockets and whether bytes may move."""

    def __init__(self, client: asyncio.StreamWriter, now: float) -> None:
        self.client = client
        self.upstream: asyncio.StreamWriter | None = None
        self.flowing = asyncio.Event()
        self.flowing.set()
        self.last_activity = now
        self.closed = asyncio.Event()

    def writers(self) -> list[asyncio.StreamWriter]:
        return [w for w in (self.client, self.upstream) if w is not None]

    def reset(self) -> None:
        for w in self.writers():
            _reset(w)
        self.closed.set()

    def close(self) -> None:
        for w in self.writers():
            w.close()
        self.closed.set()


class FaultProxy:
    """An asyncio TCP proxy on 127.0.0.1 in front of one upstream address."""

    def __init__(
        self, upstream_host: str, upstream_port: int, *, idle_timeout: float | None = None
    ) -> None:
        self.upstream_host = upstream_host
        self.upstream_port = upstream_port
        self._idle_timeout = idle_timeout
        self.refusing = False
        self.port = 0
        self.accepted = 0  # connections proxied (refused ones not counted)
        self.refused = 0  # connections reset at once because `refusing` was set
        self._server: asyncio.Server | None = None
        self._conns: set[_Conn] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._settings_changed = asyncio.Event()

    # -- settings --------------------------------------------------------------------------
    @property
    def idle_timeout(self) -> float | None:
        return self._idle_timeout

    @idle_timeout.setter
    def idle_timeout(self, value: float | None) -> None:
        self._idle_timeout = value
        self._settings_changed.set()
        self._settings_changed = asyncio.Event()

    @property
    def connections(self) -> int:
        """Connections open now."""
        return len(self._conns)

    # -- lifecycle -------------------------------------------------------------------------
    async def start(self) -> int:
        if self._server is None:
            self._server = await asyncio.start_server(self._accept, LOOPBACK, 0)
            self.port = int(self._server.sockets[0].getsockname()[1])
        return self.port

    async def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.close()
        for conn in list(self._conns):
            conn.reset()
        while self._tasks:
            tasks = list(self._tasks)
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            self._tasks.difference_update(tasks)
        if server is not None:
            await server.wait_closed()

    async def __aenter__(self) -> FaultProxy:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    # -- faults ----------------------------------------------------------------------------
    def freeze(self) -> None:
        """Existing connections stop moving bytes both ways and stay open."""
        for conn in self._conns:
            conn.flowing.clear()

    def thaw(self) -> None:
        """Frozen connections move bytes again (those still open)."""
        for conn in self._conns:
            conn.flowing.set()

    def cut(self) -> None:
        """Reset every existing connection (RST to both sides)."""
        for conn in list(self._conns):
            conn.reset()

    def cut_from(self, ports: set[int]) -> int:
        """Reset the connections whose client side is one of these local ports; how many."""
        cut = 0
        for conn in list(self._conns):
            peer = conn.client.get_extra_info("peername")
            if isinstance(peer, tuple) and peer[1] in ports:
                conn.reset()
                cut += 1
        return cut

    # -- plumbing --------------------------------------------------------------------------
    def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._server is None or self.refusing:
            self.refused += 1
            _reset(writer)
            return
        self.accepted += 1
        task = asyncio.get_running_loop().create_task(self._serve(reader, writer))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        loop = asyncio.get_running_loop()
        conn = _Conn(writer, loop.time())
        self._conns.add(conn)
        tasks: list[asyncio.Task[Any]] = []
        try:
            try:
                up_reader, up_writer = await asyncio.open_connection(
                    self.upstream_host, self.upstream_port, limit=CHUNK
                )
            except OSError:
                conn.reset()
                return
            conn.upstream = up_writer
            if conn.closed.is_set():  # cut or stopped while connecting
                conn.reset()
                return
            tasks = [
                loop.create_task(self._pump(conn, reader, up_writer)),
                loop.create_task(self._pump(conn, up_reader, writer)),
                loop.create_task(self._idle_watch(conn)),
            ]
            closed = loop.create_task(conn.closed.wait())
            tasks.append(closed)
            pumps = set(tasks[:2])
            while pumps and not conn.closed.is_set():
                done, _ = await asyncio.wait([*pumps, closed], return_when=asyncio.FIRST_COMPLETED)
                pumps -= done
            conn.close()
        finally:
            self._conns.discard(conn)
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            if not conn.closed.is_set():
                conn.reset()

    async def _pump(
        self, conn: _Conn, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        loop = asyncio.get_running_loop()
        try:
            while True:
                await conn.flowing.wait()
                data = await reader.read(CHUNK)
                await conn.flowing.wait()  # frozen while reading: hold this chunk
                conn.last_activity = loop.time()
                if not data:
                    if writer.can_write_eof():
                        writer.write_eof()
                    return
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            conn.reset()

    async def _idle_watch(self, conn: _Conn) -> None:
        loop = asyncio.get_running_loop()
        while True:
            changed = self._settings_changed
            timeout = self._idle_timeout
            if timeout is None:
                await changed.wait()
                continue
            remaining = conn.last_activity + timeout - loop.time()
            if remaining <= 0:
                conn.close()
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(changed.wait(), remaining)


def kubeconfig_via(src: Path, dst: Path, port: int) -> Path:
    """Copy kubeconfig `src` to `dst` with every cluster's server at 127.0.0.1:`port`.

    The TLS name checked stays the original server's host (`tls-server-name`, unless it is
    127.0.0.1 already or the cluster sets one), so verification is unchanged by the detour.
    """
    config: dict[str, Any] = yaml.safe_load(src.read_text())
    for entry in config.get("clusters") or []:
        cluster = entry["cluster"]
        url = urlsplit(cluster["server"])
        host = url.hostname or LOOPBACK
        if host != LOOPBACK and "tls-server-name" not in cluster:
            cluster["tls-server-name"] = host
        cluster["server"] = urlunsplit(url._replace(netloc=f"{LOOPBACK}:{port}"))
    dst.parent.mkdir(parents=True, exist_ok=True)
    dst.write_text(yaml.safe_dump(config, sort_keys=False))
    dst.chmod(0o600)
    return dst
