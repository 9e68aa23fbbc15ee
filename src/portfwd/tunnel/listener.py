"""Local TCP listeners and the local side of each connection.

Listeners accept with their own loop (not asyncio's Server): when the process runs out of file
descriptors (EMFILE) accepting pauses with a backoff and the owner hears it once per episode,
instead of a traceback per attempt and a spinning CPU; connections meanwhile wait in the
kernel's queue, whose length (:data:`LISTEN_BACKLOG`) is what the socket really gets.


Each accepted connection is a :class:`LocalConnection`, an asyncio BufferedProtocol: measured
on these machines, transport-level pumping is 2-3x faster than StreamReader/StreamWriter
copies (docs/protocols.md, section 7). Every connection reads into one buffer the whole process
shares (the transport fills it and hands it back in the same call), and what was read is
kept in an object of exactly its size: no per-connection read buffer, and no 256 KiB block
per read that holds a few bytes. Both directions are bounded:

- reading: incoming chunks are buffered up to :data:`READ_HIGH_WATER` bytes, then the socket
  stops being read until the tunnel took them (the client's TCP window does the rest);
- writing: the transport's buffer is limited to :data:`WRITE_HIGH_WATER`; above it `write`
  waits for the client to read (a slow reader stops us reading from the tunnel).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import functools
import logging
import socket
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol, cast

from portfwd.errors import PortfwdError

try:  # imported now: out of descriptors, an import could not open its file
    import resource
except ImportError:  # not on Windows
    resource = None  # type: ignore[assignment]
from portfwd.tunnel.addresses import BindAddress, format_host_port

log = logging.getLogger(__name__)

LISTEN_BACKLOG = 4096  # the kernel caps it at net.core.somaxconn, as for Go's listeners
ACCEPT_BATCH = 64  # connections accepted per wake-up, so one busy port cannot hog the loop
PAUSE_FIRST = 0.05  # after EMFILE, accepting stops this long, doubling up to PAUSE_MAX
PAUSE_MAX = 2.0
EPISODE_QUIET = 10.0  # an episode of EMFILE ends after this long without one
RESOURCE_ERRNOS = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})

READ_HIGH_WATER = 128 * 1024  # bytes read from the client and not yet sent into the tunnel
READ_CHUNK_MAX = 256 * 1024  # one read takes at most this much (the shared buffer's size)
WRITE_HIGH_WATER = 128 * 1024  # bytes written to the client and not yet taken by its socket
SEND_FRAME_MAX = 256 * 1024  # largest chunk handed to the tunnel in one send
WRITE_SLICE = 64 * 1024  # larger frames from the tunnel are written to the client in pieces


class BindError(PortfwdError):
    """A local address/port could not be listened on; the message says why and what to do."""


def bind_error_message(host: str, port: int, exc: OSError, remote: int | str | None = None) -> str:
    """The one line for a failed bind; `remote` (the forward's remote port) makes the hint
    for a port in use the exact mapping to type (kubectl's `:REMOTE` picks a free one)."""
    where = format_host_port(host, port) if port else host
    if exc.errno == errno.EADDRINUSE:
        free = f":{remote}" if remote is not None else ":REMOTE"
        return (
            f"local port {port} is already in use on {host}; pick another local port"
            f" ({free} picks a free one) or stop the program using it"
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
        sock.listen(LISTEN_BACKLOG)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


_READ_BUFFER = memoryview(bytearray(READ_CHUNK_MAX))  # see the module docstring


class Prepared(Protocol):
    """What the listener's owner made ready for a connection the moment it was accepted,
    before its transport exists (a forward: the tunnel streams, on the wire already)."""

    def abort(self) -> None:
        """The connection never opened (or was refused): give it up."""
        ...


class LocalConnection(asyncio.BufferedProtocol):
    """One accepted client connection, read and written with bounded buffers."""

    def __init__(
        self,
        on_open: Callable[[LocalConnection], None],
        prepared: Prepared | None = None,
        peer: str = "",
    ) -> None:
        self._on_open = on_open
        self._prepared = prepared
        self.transport: asyncio.Transport | None = None
        self.peer = peer  # "host:port" of the client, as accept(2) gave it
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
        # asyncio's, or another loop's (uvloop's are not asyncio.Transport subclasses)
        self.transport = cast(asyncio.Transport, transport)
        self.transport.set_write_buffer_limits(high=WRITE_HIGH_WATER)
        self._on_open(self)

    def get_buffer(self, sizehint: int) -> memoryview:
        return _READ_BUFFER

    def buffer_updated(self, nbytes: int) -> None:
        self.data_received(bytes(_READ_BUFFER[:nbytes]))

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

    # -- used by the owner and the pumps ------------------------------------------------------

    def take_prepared(self) -> Prepared | None:
        """What `prepare` made for this connection, handed over once (the taker owns it)."""
        prepared, self._prepared = self._prepared, None
        return prepared

    def _drop_prepared(self) -> None:
        prepared, self._prepared = self._prepared, None
        if prepared is not None:
            prepared.abort()

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


def open_file_limit() -> int:
    """The soft limit on open files (0 where the platform has none to tell)."""
    if resource is None:
        return 0
    try:
        return resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    except (OSError, ValueError):
        return 0


def out_of_descriptors(where: str, exc: OSError) -> str:
    """The one line for EMFILE/ENFILE: what happened, and the fix."""
    limit = open_file_limit()
    of = f" (limit {limit})" if limit > 0 else ""
    return (
        f"too many open files{of}: new connections to {where} wait until some close; "
        "close idle ones or raise the limit (ulimit -n)"
    )


def _peer(address: object) -> str:
    if isinstance(address, tuple) and len(address) >= 2:
        return format_host_port(str(address[0]), int(address[1]))
    return ""


Pressure = Callable[[str | None], None]
Prepare = Callable[[], Prepared | None]


class _Acceptor:
    """Accepts on one listening socket; pauses with a backoff while out of descriptors."""

    def __init__(
        self,
        sock: socket.socket,
        on_connection: Callable[[LocalConnection], None],
        on_pressure: Pressure | None,
        prepare: Prepare | None = None,
    ) -> None:
        self._sock = sock
        self._on_connection = on_connection
        self._on_pressure = on_pressure
        self._prepare = prepare
        self._loop = asyncio.get_running_loop()
        self._pause = 0.0  # the current pause; 0 while accepting normally
        self._timer: asyncio.TimerHandle | None = None
        self._episode: asyncio.TimerHandle | None = None  # ends the episode when it fires
        self._setups: set[asyncio.Task[None]] = set()
        # Accepted sockets whose set-up has not started yet (closed if it never does).
        self._unstarted: dict[LocalConnection, socket.socket] = {}
        self._reading = False
        name = sock.getsockname()
        self.where = format_host_port(str(name[0]), int(name[1]))

    def start(self) -> None:
        if not self._reading:
            self._reading = True
            self._loop.add_reader(self._sock.fileno(), self._ready)

    def _stop_reading(self) -> None:
        if self._reading:
            self._reading = False
            self._loop.remove_reader(self._sock.fileno())

    def _ready(self) -> None:
        for _ in range(ACCEPT_BATCH):
            try:
                conn, address = self._sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except ConnectionAbortedError:
                continue  # the client gave up while queued
            except OSError as exc:
                if exc.errno in RESOURCE_ERRNOS:
                    self._out_of_descriptors(exc)
                else:
                    log.warning("accepting on %s failed: %s", self.where, exc)
                return
            self._pause = 0.0  # accepting works again: the next EMFILE starts short
            conn.setblocking(False)
            # Small writes go at once. uvloop sets this on its transports, asyncio only on
            # sockets made with proto IPPROTO_TCP, which an accepted one is not.
            with contextlib.suppress(OSError):
                conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            # Prepared now, not once the transport is set up a few loop turns later.
            prepared = self._prepared()
            local = LocalConnection(self._on_connection, prepared, _peer(address))
            task = self._loop.create_task(self._set_up(conn, local))
            self._setups.add(task)
            self._unstarted[local] = conn
            task.add_done_callback(functools.partial(self._set_up_ended, local))

    def _prepared(self) -> Prepared | None:
        if self._prepare is None:
            return None
        try:
            return self._prepare()
        except Exception:  # a bug there must not leak the accepted socket
            log.exception("preparing a connection on %s failed", self.where)
            return None

    async def _set_up(self, conn: socket.socket, local: LocalConnection) -> None:
        del self._unstarted[local]  # the loop has the socket from here on
        try:
            await self._loop.connect_accepted_socket(lambda: local, conn)
        except OSError:
            conn.close()

    def _set_up_ended(self, local: LocalConnection, task: asyncio.Task[None]) -> None:
        """Runs for every set-up, also one cancelled by close() before it started (whose
        body, and any `finally` in it, never runs)."""
        self._setups.discard(task)
        conn = self._unstarted.pop(local, None)
        if conn is not None:
            conn.close()  # never handed to the loop: nobody else will close it
        if local.transport is None:  # failed, or dropped by close(): never opened
            local._drop_prepared()

    def _out_of_descriptors(self, exc: OSError) -> None:
        self._pause = PAUSE_FIRST if not self._pause else min(self._pause * 2, PAUSE_MAX)
        self._stop_reading()
        self._timer = self._loop.call_later(self._pause, self._resume)
        # One warning per episode, however often descriptors come and go inside it.
        if self._episode is not None:
            self._episode.cancel()
        elif self._on_pressure is not None:
            self._on_pressure(out_of_descriptors(self.where, exc))
        self._episode = self._loop.call_later(EPISODE_QUIET, self._episode_over)

    def _episode_over(self) -> None:
        self._episode = None
        if self._on_pressure is not None:
            self._on_pressure(None)

    def _resume(self) -> None:
        self._timer = None
        self.start()

    async def close(self) -> None:
        """Stop accepting; connections being set up are dropped."""
        self._stop_reading()
        for timer in (self._timer, self._episode):
            if timer is not None:
                timer.cancel()
        self._timer = self._episode = None
        self._sock.close()
        tasks = list(self._setups)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks)


@dataclass
class Listeners:
    """The listening sockets of one forward: every address it listens on, for one port."""

    acceptors: list[_Acceptor] = field(default_factory=list)
    bound: list[tuple[str, int]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def port(self) -> int:
        return self.bound[0][1] if self.bound else 0

    async def close(self) -> None:
        """Stop accepting. Connections already accepted are the forward's to end."""
        acceptors, self.acceptors = self.acceptors, []
        for acceptor in acceptors:
            with contextlib.suppress(Exception):
                await acceptor.close()


def check_bindable(
    addresses: Sequence[BindAddress], port: int, remote: int | str | None = None
) -> None:
    """Raise BindError unless `port` can be listened on at `addresses` (kubectl's rules).

    Used before anything is started so a conflict is reported alone; the real bind follows.
    """
    if port == 0:
        return
    socks, _, _ = _open_all(addresses, port, remote)
    for sock in socks:
        sock.close()


def _open_all(
    addresses: Sequence[BindAddress], port: int, remote: int | str | None = None
) -> tuple[list[socket.socket], list[tuple[str, int]], list[str]]:
    """(sockets, bound, warnings): a listening socket per address, all on the same port.

    With port 0 the free port picked on the first address may be taken on another one:
    then start over with a new free port, a few times. On failure nothing stays open.
    """
    attempts = 5 if port == 0 and len(addresses) > 1 else 1
    for attempt in range(attempts):
        opened: list[socket.socket] = []
        try:
            bound, warnings = _open_once(addresses, port, opened.append, remote)
        except BaseException as exc:
            for sock in opened:
                sock.close()
            if isinstance(exc, BindError) and attempt < attempts - 1:
                continue
            raise
        return opened, bound, warnings
    raise AssertionError("unreachable")


def _open_once(
    addresses: Sequence[BindAddress],
    port: int,
    keep: Callable[[socket.socket], None],
    remote: int | str | None,
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
        message = bind_error_message(addr.host, bound[0][1] if bound else port, err, remote)
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
    on_pressure: Pressure | None = None,
    remote: int | str | None = None,
    prepare: Prepare | None = None,
) -> Listeners:
    """Listen on every address (port 0: the first gets a free port, the others the same).

    Raises BindError (nothing left open) when a required address or every `localhost`
    address fails, or the port is in use / privileged anywhere. Non-loopback addresses get
    a warning in `Listeners.warnings`. `on_pressure(message)` is called when accepting
    pauses because the process is out of file descriptors, and `on_pressure(None)` once
    :data:`EPISODE_QUIET` seconds passed without that (once per episode each).
    `prepare()` runs the moment a connection is accepted; what it returns is the
    connection's `take_prepared()` when `on_connection` gets it, and is aborted if the
    connection never opens.
    """
    socks, bound, warnings = _open_all(addresses, port, remote)
    listeners = Listeners(bound=bound, warnings=warnings)
    for addr in addresses:
        if not addr.loopback and any(h == addr.host for h, _ in bound):
            listeners.warnings.append(
                f"listening on {addr.host}, which is not a loopback address: anyone who can"
                f" reach this host on port {bound[0][1]} can use this forward"
            )
    try:
        for sock in socks:
            acceptor = _Acceptor(sock, on_connection, on_pressure, prepare)
            listeners.acceptors.append(acceptor)
            acceptor.start()
    except BaseException:
        for sock in socks:
            sock.close()
        await listeners.close()
        raise
    return listeners
