"""Local listener + pump + v4 WebSocket against a fake kubelet, over real loopback sockets."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import hashlib
import os
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import pytest_asyncio

from portfwd.tunnel import listener as listener_mod
from portfwd.tunnel.addresses import parse_addresses
from portfwd.tunnel.listener import (
    READ_CHUNK_MAX,
    READ_HIGH_WATER,
    WRITE_HIGH_WATER,
    WRITE_SLICE,
    BindError,
    Listeners,
    LocalConnection,
    bind,
    check_bindable,
)
from portfwd.tunnel.protocol import TunnelError
from portfwd.tunnel.pump import MAX_BUFFERED_PER_CONNECTION, Lingering, pump
from portfwd.tunnel.ws_v4 import WsV4Tunnel

from .fakes import FakeClient, FakeKubelet, echo_server

ECHO_PORT = 9000


@dataclass
class Harness:
    kubelet: FakeKubelet
    client: FakeClient
    listeners: Listeners | None = None
    pod_port: int = ECHO_PORT
    bytes_in: int = 0
    bytes_out: int = 0
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    conns: list[LocalConnection] = field(default_factory=list)
    tasks: set[asyncio.Task[None]] = field(default_factory=set)
    done: asyncio.Queue[str | None] = field(default_factory=asyncio.Queue)
    eof_idle_limit: float = 0.3  # v4 cannot tell the pod a client closed: end those soon
    lingering: Lingering | None = None

    def add_in(self, n: int) -> None:
        self.bytes_in += n

    def add_out(self, n: int) -> None:
        self.bytes_out += n

    def on_connection(self, local: LocalConnection) -> None:
        self.conns.append(local)
        task = asyncio.create_task(self._run(local))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _run(self, local: LocalConnection) -> None:
        error: str | None = None
        try:
            stream = await WsV4Tunnel(self.client).open("demo", "pod-a", self.pod_port)
            await pump(
                local,
                stream,
                self,
                warn=self.warnings.append,
                eof_idle_limit=self.eof_idle_limit,
                lingering=self.lingering,
            )
        except TunnelError as exc:
            error = str(exc)
            self.errors.append(error)
            local.close()
        finally:
            self.done.put_nowait(error)

    @property
    def port(self) -> int:
        assert self.listeners is not None
        return self.listeners.port


@pytest_asyncio.fixture
async def harness() -> AsyncIterator[Harness]:
    async with echo_server() as echo:
        kubelet = FakeKubelet(backends={ECHO_PORT: echo})
        await kubelet.start()
        client = FakeClient(kubelet.url)
        h = Harness(kubelet, client)
        try:
            h.listeners = await bind(parse_addresses("127.0.0.1"), 0, h.on_connection)
            yield h
        finally:
            if h.listeners is not None:
                await h.listeners.close()
            for task in list(h.tasks):
                task.cancel()
            for task in list(h.tasks):
                with contextlib.suppress(BaseException):
                    await task
            await client.close()
            await kubelet.stop()


async def _send_and_receive(port: int, payload: bytes, chunk: int = 65536) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    received = bytearray()

    async def sender() -> None:
        for i in range(0, len(payload), chunk):
            writer.write(payload[i : i + chunk])
            await writer.drain()

    async def receiver() -> None:
        while len(received) < len(payload):
            data = await reader.read(262144)
            if not data:
                break
            received.extend(data)

    await asyncio.gather(sender(), receiver())
    writer.close()
    return bytes(received)


async def test_bytes_arrive_intact_both_ways(harness: Harness) -> None:
    payload = os.urandom(8 * 1024 * 1024)
    got = await asyncio.wait_for(_send_and_receive(harness.port, payload), 60)
    assert hashlib.sha256(got).hexdigest() == hashlib.sha256(payload).hexdigest()
    assert await asyncio.wait_for(harness.done.get(), 10) is None
    assert harness.bytes_in == harness.bytes_out == len(payload)
    assert harness.errors == []


async def test_many_concurrent_connections(harness: Harness) -> None:
    async def one(i: int) -> bool:
        payload = os.urandom(1000 + i)
        return await _send_and_receive(harness.port, payload) == payload

    results = await asyncio.wait_for(asyncio.gather(*(one(i) for i in range(50))), 60)
    assert all(results)


async def test_local_eof_still_delivers_the_answer(harness: Harness) -> None:
    """`send request; shutdown(WR); read everything` works despite v4 having no half-close."""
    reader, writer = await asyncio.open_connection("127.0.0.1", harness.port)
    writer.write(b"ping" * 1000)
    writer.write_eof()
    got = await asyncio.wait_for(reader.read(), 10)  # read until the WebSocket ends
    assert got == b"ping" * 1000
    writer.close()
    assert await asyncio.wait_for(harness.done.get(), 10) is None


class _Entered(Lingering):
    """Lingering that tells the test when a connection starts to wait."""

    def __init__(self, limit: int, quiet: float) -> None:
        super().__init__(limit, quiet)
        self.entered: asyncio.Queue[None] = asyncio.Queue()

    def enter(self, clock: Any) -> None:
        super().enter(clock)
        self.entered.put_nowait(None)


async def test_at_most_so_many_v4_connections_wait_for_a_silent_pod(harness: Harness) -> None:
    """Each v4 connection that waits for the pod after its client's end holds a WebSocket:
    a newcomer over the limit releases the one quiet longest, and `shed` releases all (the
    forward does when descriptors run out). Without it, the echo pod (which never learns of
    the end) would keep all three for the whole idle limit."""
    lingering = harness.lingering = _Entered(limit=2, quiet=0.0)
    harness.eof_idle_limit = 120.0
    clients = []
    for i in range(3):
        reader, writer = await asyncio.open_connection("127.0.0.1", harness.port)
        writer.write(b"hi")
        assert await asyncio.wait_for(reader.readexactly(2), 10) == b"hi"
        writer.write_eof()
        clients.append((reader, writer))
        if i < 2:
            await asyncio.wait_for(lingering.entered.get(), 10)
    # The third's end released the first: its client gets EOF, the other two still wait.
    assert await asyncio.wait_for(clients[0][0].read(), 10) == b""
    assert len(lingering) == 2
    assert lingering.shed() == 2
    for reader, _ in clients[1:]:
        assert await asyncio.wait_for(reader.read(), 10) == b""
    for _, writer in clients:
        writer.close()
    for _ in clients:
        assert await asyncio.wait_for(harness.done.get(), 10) is None
    assert len(lingering) == 0


async def _half_closed(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"hi")
    assert await asyncio.wait_for(reader.readexactly(2), 10) == b"hi"
    writer.write_eof()
    return reader, writer


async def test_a_v4_connection_whose_pod_spoke_lately_is_not_cut_for_room(
    harness: Harness,
) -> None:
    """Over the limit, only a connection quiet for `quiet` seconds gives way: a reply may
    still be coming to the others, so the limit gives way instead."""
    lingering = harness.lingering = _Entered(limit=1, quiet=3600.0)
    harness.eof_idle_limit = 120.0
    clients = []
    for _ in range(3):
        clients.append(await _half_closed(harness.port))
        await asyncio.wait_for(lingering.entered.get(), 10)
    assert len(lingering) == 3  # all wait; none was cut
    assert lingering.shed() == 3
    for reader, writer in clients:
        assert await asyncio.wait_for(reader.read(), 10) == b""
        writer.close()


async def test_out_of_descriptors_no_v4_connection_waits(harness: Harness) -> None:
    lingering = harness.lingering = _Entered(limit=32, quiet=3600.0)
    lingering.pressure = True  # (as the forward sets it while accepting is paused)
    harness.eof_idle_limit = 120.0
    reader, writer = await _half_closed(harness.port)
    assert await asyncio.wait_for(reader.read(), 10) == b""  # at once, not after 120 s
    assert len(lingering) == 0
    writer.close()


async def test_error_channel_text_is_the_failure_reason(harness: Harness) -> None:
    harness.kubelet.refusing.add(ECHO_PORT)
    reader, writer = await asyncio.open_connection("127.0.0.1", harness.port)
    writer.write(b"hello")  # a write racing with the abort must not hide the kubelet's text
    got = await asyncio.wait_for(reader.read(), 10)
    writer.close()
    assert got == b""
    error = await asyncio.wait_for(harness.done.get(), 10)
    assert error is not None
    assert error.startswith("error forwarding port 9000 to pod pod-a, uid : failed to connect")
    assert error.endswith("connect: connection refused")


async def test_remote_end_gives_local_eof(harness: Harness) -> None:
    harness.pod_port = 9001
    async with echo_server() as closer:
        harness.kubelet.backends[9001] = closer
        reader, writer = await asyncio.open_connection("127.0.0.1", harness.port)
        writer.write(b"abc")
        await writer.drain()
        assert await asyncio.wait_for(reader.readexactly(3), 10) == b"abc"
        writer.write_eof()  # the echo backend then closes: we must see EOF, not an error
        assert await asyncio.wait_for(reader.read(), 10) == b""
        writer.close()
    assert await asyncio.wait_for(harness.done.get(), 10) is None


async def test_slow_reader_keeps_buffers_bounded(harness: Harness) -> None:
    """A client that sends a lot and reads nothing: portfwd's buffers stay at their marks."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
    sock.setblocking(False)
    loop = asyncio.get_running_loop()
    await loop.sock_connect(sock, ("127.0.0.1", harness.port))
    payload = os.urandom(24 * 1024 * 1024)
    sent = 0

    async def sender() -> None:
        nonlocal sent
        view = memoryview(payload)
        while sent < len(payload):
            chunk = view[sent : sent + 65536]
            await loop.sock_sendall(sock, chunk)
            sent += len(chunk)

    send_task = asyncio.create_task(sender())
    try:
        # Not reading: the sender stalls once every buffer on the path is full.
        last = -1
        while last != sent:
            last = sent
            await asyncio.sleep(0.5)
        # (Kernel socket buffers on the four loopback hops may absorb all of it.)
        (local,) = harness.conns
        assert local.peak_write_buffer <= WRITE_HIGH_WATER + WRITE_SLICE
        assert local.peak_read_buffer <= READ_HIGH_WATER + READ_CHUNK_MAX
        # ... and at least one of them did fill up to its mark: back-pressure really engaged
        # (here both do; which one first depends on the kernel's socket buffer sizes).
        assert (
            local.peak_write_buffer >= WRITE_HIGH_WATER or local.peak_read_buffer >= READ_HIGH_WATER
        )
        assert local.buffered <= MAX_BUFFERED_PER_CONNECTION
        # Now read everything: nothing was lost on the way.
        received = bytearray()
        while len(received) < len(payload):
            data = await asyncio.wait_for(loop.sock_recv(sock, 1 << 20), 30)
            assert data
            received.extend(data)
        assert bytes(received) == payload
        await send_task
    finally:
        send_task.cancel()
        with contextlib.suppress(BaseException):
            await send_task
        sock.close()


async def test_port_in_use_is_one_clear_error() -> None:
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen()
    port = holder.getsockname()[1]
    try:
        with pytest.raises(BindError) as info:
            check_bindable(parse_addresses("127.0.0.1"), port, 80)
        assert str(info.value) == (
            f"local port {port} is already in use on 127.0.0.1; pick another local port"
            " (:80 picks a free one) or stop the program using it"
        )
        with pytest.raises(BindError):
            await bind(parse_addresses("localhost"), port, lambda c: None)
    finally:
        holder.close()


async def test_privileged_port_message(monkeypatch: pytest.MonkeyPatch) -> None:
    def deny(host: str, port: int) -> socket.socket:
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(listener_mod, "open_listening_socket", deny)
    with pytest.raises(BindError) as info:
        await bind(parse_addresses("localhost"), 80, lambda c: None)
    assert str(info.value) == (
        "binding port 80 needs root or CAP_NET_BIND_SERVICE; pick a port above 1023"
    )


async def test_localhost_without_ipv6_keeps_ipv4_with_a_warning(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real = listener_mod.open_listening_socket

    def no_v6(host: str, port: int) -> socket.socket:
        if ":" in host:
            raise OSError(errno.EADDRNOTAVAIL, "Cannot assign requested address")
        return real(host, port)

    monkeypatch.setattr(listener_mod, "open_listening_socket", no_v6)
    listeners = await bind(parse_addresses("localhost"), 0, lambda c: None)
    try:
        assert [h for h, _ in listeners.bound] == ["127.0.0.1"]
        (warning,) = listeners.warnings
        assert "cannot listen on [::1]:" in warning and "127.0.0.1" in warning
    finally:
        await listeners.close()
    with pytest.raises(BindError, match="not available on this host"):
        await bind(parse_addresses("127.0.0.1,::1"), 0, lambda c: None)


async def test_non_loopback_address_is_warned(monkeypatch: pytest.MonkeyPatch) -> None:
    real = listener_mod.open_listening_socket
    monkeypatch.setattr(
        listener_mod, "open_listening_socket", lambda host, port: real("127.0.0.1", port)
    )
    listeners = await bind(parse_addresses("10.1.2.3"), 0, lambda c: None)
    try:
        (warning,) = listeners.warnings
        assert warning.startswith("listening on 10.1.2.3, which is not a loopback address")
    finally:
        await listeners.close()


async def test_localhost_binds_both_families_on_one_port() -> None:
    if not socket.has_ipv6:
        pytest.skip("no IPv6")
    listeners = await bind(parse_addresses("localhost"), 0, lambda c: None)
    try:
        ports = {p for _, p in listeners.bound}
        assert len(ports) == 1
        assert {host for host, _ in listeners.bound} == {"127.0.0.1", "::1"}  # both families
    finally:
        await listeners.close()
