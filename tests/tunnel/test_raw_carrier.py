"""RawCarrier's writes: the first of a loop turn goes to the transport at once, the rest of
that turn go together when it is over."""

from __future__ import annotations

import asyncio

from portfwd.tunnel.carriers import COALESCE_BELOW, RawCarrier


class Transport:
    """Records what is written to it."""

    def __init__(self) -> None:
        self.writes: list[bytes] = []

    def write(self, data: bytes) -> None:
        self.writes.append(bytes(data))

    def is_closing(self) -> bool:
        return False

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        pass

    def get_write_buffer_size(self) -> int:
        return 0


class Sink:
    def feed(self, data: bytes | memoryview) -> None:
        pass

    def lost(self, reason: str | None) -> None:
        pass


def _carrier() -> tuple[RawCarrier, Transport]:
    carrier = RawCarrier(Sink())
    transport = Transport()
    carrier.connection_made(transport)  # type: ignore[arg-type]
    return carrier, transport


async def _turn_over() -> None:
    await asyncio.sleep(0)


async def test_a_lone_write_goes_at_once() -> None:
    carrier, transport = _carrier()
    carrier.write(b"syn")
    assert transport.writes == [b"syn"]  # not held for the end of the turn
    await _turn_over()
    assert transport.writes == [b"syn"]
    carrier.write(b"data")  # a later turn: at once again
    assert transport.writes == [b"syn", b"data"]


async def test_writes_after_the_first_of_a_turn_go_together() -> None:
    carrier, transport = _carrier()
    for part in (b"a", b"b", b"c", b"d"):
        carrier.write(part)
    assert transport.writes == [b"a"]
    assert carrier.buffered == 3
    await _turn_over()
    assert transport.writes == [b"a", b"bcd"]
    assert carrier.buffered == 0


async def test_a_large_write_keeps_the_order_of_what_waited() -> None:
    carrier, transport = _carrier()
    big = b"x" * COALESCE_BELOW
    carrier.write(b"1")
    carrier.write(b"2")
    carrier.write(big)
    assert transport.writes == [b"1", b"2", big]
    await _turn_over()
    assert transport.writes == [b"1", b"2", big]


class ClosingTransport(Transport):
    def __init__(self) -> None:
        super().__init__()
        self.closed = False
        self.aborted = False

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.aborted = True


async def test_close_sends_what_waited_first_and_abort_drops_it() -> None:
    closing = RawCarrier(Sink())
    transport = ClosingTransport()
    closing.connection_made(transport)  # type: ignore[arg-type]
    closing.write(b"syn")
    closing.write(b"fin")
    closing.close()  # the FIN still goes, before the connection closes
    assert transport.writes == [b"syn", b"fin"] and transport.closed

    aborting = RawCarrier(Sink())
    dropped = ClosingTransport()
    aborting.connection_made(dropped)  # type: ignore[arg-type]
    aborting.write(b"syn")
    aborting.write(b"data")
    aborting.abort()
    await _turn_over()
    assert dropped.writes == [b"syn"] and dropped.aborted
    assert aborting.buffered == 0
