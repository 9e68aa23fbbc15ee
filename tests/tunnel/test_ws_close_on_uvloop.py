"""A WebSocket whose transport is already gone when portfwd closes it (uvloop raises
RuntimeError for a close frame on a closed transport; asyncio's loop does not): the tunnel
ends quietly, with no task dying in an exception nobody retrieves (which printed a traceback
at the end of `portfwd up --all-or-nothing`)."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp

from portfwd.tunnel.carriers import WebSocketCarrier
from portfwd.tunnel.ws_v4 import WsV4Stream

CLOSED = "unable to perform operation on <TCPTransport closed=True reading=False>"


class GoneWebSocket:
    """What aiohttp's client WebSocket does on uvloop once the connection was lost."""

    closed = False
    close_code = None

    def __init__(self) -> None:
        self._gone = asyncio.Event()
        self.close_calls = 0

    async def receive(self) -> Any:
        await self._gone.wait()
        return aiohttp.WSMessage(aiohttp.WSMsgType.CLOSED, None, None)

    async def send_bytes(self, data: bytes) -> None:
        raise RuntimeError(CLOSED)

    async def close(self) -> bool:
        self.close_calls += 1
        self._gone.set()
        raise RuntimeError(CLOSED)

    def get_extra_info(self, name: str) -> Any:
        return None


class Sink:
    def __init__(self) -> None:
        self.reasons: list[str | None] = []

    def feed(self, data: bytes | memoryview) -> None:
        pass

    def lost(self, reason: str | None) -> None:
        self.reasons.append(reason)


async def test_closing_a_spdy_websocket_whose_transport_is_gone_ends_quietly() -> None:
    ws = GoneWebSocket()
    sink = Sink()
    carrier = WebSocketCarrier(ws, sink, "t")  # type: ignore[arg-type]
    carrier.close()
    await asyncio.wait_for(carrier.wait_closed(), 5)
    assert ws.close_calls == 1
    for task in (carrier._reader, carrier._writer):
        assert task.exception() is None, task.exception()
    assert len(sink.reasons) == 1


async def test_closing_a_v4_stream_whose_transport_is_gone_ends_quietly() -> None:
    ws = GoneWebSocket()
    stream = WsV4Stream(ws, 80)  # type: ignore[arg-type]
    await asyncio.wait_for(stream.close(), 5)  # no RuntimeError
    assert ws.close_calls == 1 and stream._ended
