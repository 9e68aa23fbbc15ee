"""Local TCP listeners and the local side of each connection.

Each accepted connection is a :class:`LocalConnection`, an asyncio Protocol: measured on these
machines, transport-level pumping is 2-3x faster than StreamReader/StreamWriter copies
(protocols.md section 5). Both directions are bounded:

- reading: incoming chunks are buffered up to :data:`READ_HIGH_WATER` bytes, then the socket
  stops being read until the tunnel took them (the client's TCP window does the rest);
- writing: the transport's buffer is limited to :data:`WRITE_HIGH_WATER`; above it `write`
  waits for the client to read (a slow reader stops us reading from the tunnel).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import socket
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from portfwd.errors import PortfwdError
from portfwd.tunnel.addresses import BindAddress, format_host_port

log = logging.getLogger(__name__)

READ_HIGH_WATER = 256 * 1024  # bytes read from the client and not yet sent into the tunnel
READ_CHUNK_MAX = 256 * 1024  # asyncio reads at most this much per data_received
WRITE_HIGH_WATER = 256 * 1024  # bytes written to the client and not yet taken by its socket
SEND_FRAME_MAX = 256 * 1024  # largest chunk handed to the tunnel in one send
WRITE_SLICE = 64 * 1024  # larger frames from the tunnel are written to the client in pieces


class BindError(PortfwdError):
    """A local address/port could not be listened on; the message says why and what to do."""


def bind_error_message(host: str, port: int, exc: OSError) -> str:
    where = format_host_port(host, port) if port else host
    if exc.errno == errno.EADDRINUSE:
        return (
            f"local port {port} is already in use on {host}; pick another local port"
            f" (e.g. :{port} for a free one) or stop the program using it"
        )
    if exc.errno == errno.EACCES:
        return f"binding port {port} needs root or CAP_NET_BIND_SERVICE; pick a port above 1023"
    if exc.errno in (errno.EADDRNOTAVAIL, errno.EAFNOSUPPORT):
        return f"cannot listen on {where}: the address is not available on this host"
    return f"cannot listen on {where}: {exc.strerror or exc}"


def open_listening_socket(host: str, port: int) -> socket.socket:
    """A bound, listening, non-blocking TCP socket; raises OSError (see bind_error_message).

    Kept as a module function so tests can simulate EACCES (they run as root here).
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind((host, port))
        sock.listen(512)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


class LocalConnection(asyncio.Protocol):
    """One accepted client connection, read and written with bounded buffers."""

    def __init__(self, on_open: Callable[[LocalConnection], None]) -> None:
        self._on_open = on_open
        self.transport: asyncio.Transport | None = None
        self.peer: str = ""
        self._chunks: deque[bytes] = deque()
        self._buffered = 0
        self._eof = False
        self._lost = False
        self._read_paused = False
        self._read_waiter: asyncio.Future[None] | None = None
        self._write_paused = False
        self._drain_waiter: asyncio.Future[None] | None = None
        # Peaks, for the memory-bound tests and the bench.
        self.peak_read_buffer = 0
        self.peak_write_buffer = 0

    # -- asyncio.Protocol --------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        transport.set_write_buffer_limits(high=WRITE_HIGH_WATER)
        peer = transport.get_extra_info("peername")
        if isinstance(peer, tuple) and len(peer) >= 2:
            self.peer = format_host_port(str(peer[0]), int(peer[1]))
        with contextlib.suppress(OSError):
            sock = transport.get_extra_info("socket")
            if sock is not None:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._on_open(self)

    def data_received(self, data: bytes) -> None:
        self._chunks.append(data)
        self._buffered += len(data)
        if self._buffered > self.peak_read_buffer:
            self.peak_read_buffer = self._buffered
        if self._buffered >= READ_HIGH_WATER and not self._read_paused and self.transport:
            self._read_paused = True
            self.transport.pause_reading()
        self._wake_reader()

    def eof_received(self) -> bool:
        self._eof = True
        self._wake_reader()
        return True  # keep the transport open: the tunnel may still have data for the client

    def connection_lost(self, exc: Exception | None) -> None:
        self._lost = True
        self._eof = True
        self._wake_reader()
        waiter, self._drain_waiter = self._drain_waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def pause_writing(self) -> None:
        self._write_paused = True

    def resume_writing(self) -> None:
        self._write_paused = False
        waiter, self._drain_waiter = self._drain_waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    # -- used by the pumps -------------------------------------------------------------------

    @property
    def buffered(self) -> int:
        """Bytes held inside portfwd for this client: unread input plus unsent output."""
        out = self.transport.get_write_buffer_size() if self.transport else 0
        return self._buffered + out

    @property
    def closed(self) -> bool:
        return self._lost

    def _wake_reader(self) -> None:
        waiter, self._read_waiter = self._read_waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def read(self) -> bytes:
        """The next chunk(s) from the client, at most SEND_FRAME_MAX bytes; b"" at EOF."""
        while not self._chunks:
            if self._eof:
                return b""
            self._read_waiter = asyncio.get_running_loop().create_future()
            try:
                await self._read_waiter
            finally:
                self._read_waiter = None
        chunks = self._chunks
        if len(chunks) == 1 or len(chunks[0]) >= SEND_FRAME_MAX:
            data = chunks.popleft()
        else:
            parts = [chunks.popleft()]
            size = len(parts[0])
            while chunks and size + len(chunks[0]) <= SEND_FRAME_MAX:
                part = chunks.popleft()
                parts.append(part)
                size += len(part)
            data = b"".join(parts)
        self._buffered -= len(data)
        if self._read_paused and self._buffered < READ_HIGH_WATER // 2 and self.transport:
            self._read_paused = False
            if not self._lost:
                self.transport.resume_reading()
        return data

    async def write(self, data: bytes) -> None:
        """Write to the client, waiting while its buffer is above the high-water mark.

        Large frames go in WRITE_SLICE pieces, so the buffer never exceeds
        WRITE_HIGH_WATER + WRITE_SLICE whatever frame size the server chose.
        """
        if len(data) <= WRITE_SLICE:
            await self._write_piece(data)
            return
        view = memoryview(data)
        for start in range(0, len(data), WRITE_SLICE):
            await self._write_piece(view[start : start + WRITE_SLICE])

    async def _write_piece(self, data: bytes | memoryview) -> None:
        transport = self.transport
        if transport is None or self._lost or transport.is_closing():
            raise ConnectionResetError("local connection closed")
        transport.write(data)
        size = transport.get_write_buffer_size()
        if size > self.peak_write_buffer:
            self.peak_write_buffer = size
        if self._write_paused and not self._lost:
            self._drain_waiter = asyncio.get_running_loop().create_future()
            await self._drain_waiter
            if self._lost:
                raise ConnectionResetError("local connection closed")

    def write_eof(self) -> None:
        transport = self.transport
        if transport is not None and not transport.is_closing() and transport.can_write_eof():
            with contextlib.suppress(OSError, RuntimeError):
                transport.write_eof()

    async def wait_eof(self, limit: float) -> None:
        """Wait (discarding input) until the client closes its side, at most `limit` s."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(limit):
                while await self.read():
                    pass

    def close(self) -> None:
        """Close after what was written is flushed."""
        if self.transport is not None and not self.transport.is_closing():
            self.transport.close()

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()


@dataclass
class Listeners:
    """The servers of one forward: every address it listens on, for one port."""

    servers: list[asyncio.Server] = field(default_factory=list)
    bound: list[tuple[str, int]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def port(self) -> int:
        return self.bound[0][1] if self.bound else 0

    async def close(self) -> None:
        """Stop accepting. Connections already accepted are the forward's to end."""
        servers, self.servers = self.servers, []
        for server in servers:
            server.close()
        for server in servers:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(1.0):
                    await server.wait_closed()


def check_bindable(addresses: Sequence[BindAddress], port: int) -> None:
    """Raise BindError unless `port` can be listened on at `addresses` (kubectl's rules).

    Used before anything is started so a conflict is reported alone; the real bind follows.
    """
    if port == 0:
        return
    socks, _, _ = _open_all(addresses, port)
    for sock in socks:
        sock.close()


def _open_all(
    addresses: Sequence[BindAddress], port: int
) -> tuple[list[socket.socket], list[tuple[str, int]], list[str]]:
    """(sockets, bound, warnings): a listening socket per address, all on the same port.

    With port 0 the free port picked on the first address may be taken on another one:
    then start over with a new free port, a few times. On failure nothing stays open.
    """
    attempts = 5 if port == 0 and len(addresses) > 1 else 1
    for attempt in range(attempts):
        opened: list[socket.socket] = []
        try:
            bound, warnings = _open_once(addresses, port, opened.append)
        except BaseException as exc:
            for sock in opened:
                sock.close()
            if isinstance(exc, BindError) and attempt < attempts - 1:
                continue
            raise
        return opened, bound, warnings
    raise AssertionError("unreachable")


def _open_once(
    addresses: Sequence[BindAddress], port: int, keep: Callable[[socket.socket], None]
) -> tuple[list[tuple[str, int]], list[str]]:
    bound: list[tuple[str, int]] = []
    warnings: list[str] = []
    failures: list[tuple[BindAddress, OSError]] = []
    for addr in addresses:
        want = bound[0][1] if bound else port
        try:
            sock = open_listening_socket(addr.host, want)
        except OSError as exc:
            failures.append((addr, exc))
            continue
        keep(sock)
        bound.append((addr.host, sock.getsockname()[1]))
    for addr, err in failures:
        message = bind_error_message(addr.host, bound[0][1] if bound else port, err)
        if addr.required or not bound or err.errno in (errno.EADDRINUSE, errno.EACCES):
            raise BindError(message)
        warnings.append(f"{message}; listening on {format_host_port(*bound[0])} only")
    if not bound:  # only possible with an empty address list
        raise BindError(f"nothing to listen on for port {port}")
    return bound, warnings


async def bind(
    addresses: Sequence[BindAddress],
    port: int,
    on_connection: Callable[[LocalConnection], None],
) -> Listeners:
    """Listen on every address (port 0: the first gets a free port, the others the same).

    Raises BindError (nothing left open) when a required address or every `localhost`
    address fails, or the port is in use / privileged anywhere. Non-loopback addresses get
    a warning in `Listeners.warnings`.
    """
    loop = asyncio.get_running_loop()
    socks, bound, warnings = _open_all(addresses, port)
    listeners = Listeners(bound=bound, warnings=warnings)
    for addr in addresses:
        if not addr.loopback and any(h == addr.host for h, _ in bound):
            listeners.warnings.append(
                f"listening on {addr.host}, which is not a loopback address: anyone who can"
                f" reach this host on port {bound[0][1]} can use this forward"
            )
    try:
        for sock in socks:
            server = await loop.create_server(lambda: LocalConnection(on_connection), sock=sock)
            listeners.servers.append(server)
    except BaseException:
        for sock in socks:
            sock.close()
        await listeners.close()
        raise
    return listeners
