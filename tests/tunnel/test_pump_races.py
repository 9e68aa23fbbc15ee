"""Pump edge cases with a scripted tunnel stream (no WebSocket)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from portfwd.tunnel.addresses import parse_addresses
from portfwd.tunnel.listener import LocalConnection, bind
from portfwd.tunnel.protocol import TunnelError
from portfwd.tunnel.pump import pump

KUBELET_TEXT = (
    "error forwarding port 5432 to pod db-0, uid 1234: failed to connect to localhost:5432"
    ' inside namespace of pod "db-0": dial tcp 127.0.0.1:5432: connect: connection refused'
)


class RacingStream:
    """The server aborts while we write: send fails with a transport error first, and the
    error-channel text is only read afterwards."""

    half_close = False

    def __init__(self) -> None:
        self.sent = asyncio.Event()
        self.aborted = False
        self.closed = False

    async def send(self, data: bytes) -> None:
        self.sent.set()
        raise TunnelError(
            "connection to the pod closed while sending (Cannot write to closing transport)"
        )

    async def send_eof(self) -> None:
        pass

    async def receive(self) -> bytes:
        await self.sent.wait()
        await asyncio.sleep(0.05)
        raise TunnelError(KUBELET_TEXT)

    async def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.aborted = True

    @property
    def error(self) -> str | None:
        return None


class Meter:
    def add_in(self, n: int) -> None:
        pass

    def add_out(self, n: int) -> None:
        pass


@pytest_asyncio.fixture
async def accepted() -> AsyncIterator[tuple[asyncio.Queue[LocalConnection], int]]:
    queue: asyncio.Queue[LocalConnection] = asyncio.Queue()
    listeners = await bind(parse_addresses("127.0.0.1"), 0, queue.put_nowait)
    try:
        yield queue, listeners.port
    finally:
        await listeners.close()


async def test_write_racing_with_abort_reports_the_kubelet_text(
    accepted: tuple[asyncio.Queue[LocalConnection], int],
) -> None:
    queue, port = accepted
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        local = await asyncio.wait_for(queue.get(), 5)
        stream = RacingStream()
        writer.write(b"SELECT 1;")
        with pytest.raises(TunnelError) as info:
            await asyncio.wait_for(pump(local, stream, Meter()), 10)
        assert str(info.value) == KUBELET_TEXT
        assert await asyncio.wait_for(reader.read(), 5) == b""  # the client sees the end
    finally:
        writer.close()


class EndlessStream:
    """A pod side that never ends: cancellation must abort both sides promptly."""

    def __init__(self) -> None:
        self.aborted = False

    async def send(self, data: bytes) -> None:
        pass

    async def receive(self) -> bytes:
        await asyncio.Event().wait()
        return b""

    async def close(self) -> None:
        pass

    def abort(self) -> None:
        self.aborted = True

    @property
    def error(self) -> str | None:
        return None


async def test_cancelled_pump_aborts_both_sides(
    accepted: tuple[asyncio.Queue[LocalConnection], int],
) -> None:
    queue, port = accepted
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        local = await asyncio.wait_for(queue.get(), 5)
        stream = EndlessStream()
        task = asyncio.create_task(pump(local, stream, Meter()))
        await asyncio.sleep(0.05)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(task, 5)
        assert task.cancelled()
        assert stream.aborted
        assert local.transport is not None and local.transport.is_closing()
        with contextlib.suppress(ConnectionResetError):
            assert await asyncio.wait_for(reader.read(), 5) == b""
    finally:
        writer.close()
