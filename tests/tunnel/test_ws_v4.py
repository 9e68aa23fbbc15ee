"""The v4 frame codec and the port prefix, without a network."""

from __future__ import annotations

import asyncio
import base64
from typing import Any

import aiohttp
import pytest

from portfwd.tunnel.protocol import TunnelError
from portfwd.tunnel.ws_v4 import (
    ERROR_TEXT_MAX,
    WsV4Stream,
    _PrefixStripper,
    decode_base64_frame,
    decode_frame,
    encode_frame,
    port_prefix,
)


def test_frame_round_trip() -> None:
    assert encode_frame(0, b"hello") == b"\x00hello"
    assert decode_frame(b"\x01oops") == (1, b"oops")
    assert decode_frame(b"") == (-1, b"")


def test_port_prefix_is_little_endian() -> None:
    assert port_prefix(18080) == b"\xa0\x46"  # as measured on a real API server


def test_base64_frames() -> None:
    text = "0" + base64.b64encode(port_prefix(18080)).decode()
    assert text == "0oEY="
    assert decode_base64_frame(text) == (0, b"\xa0\x46")
    with pytest.raises(TunnelError, match="malformed base64"):
        decode_base64_frame("1!!!")


def test_prefix_stripped_across_frames() -> None:
    strip = _PrefixStripper(18080)
    assert strip.feed(b"\xa0") == b""
    assert not strip.done
    assert strip.feed(b"\x46data") == b"data"
    assert strip.done


def test_prefix_naming_another_port_fails() -> None:
    strip = _PrefixStripper(80)
    with pytest.raises(TunnelError, match="announced port 81, expected 80"):
        strip.feed(port_prefix(81))


class _ErrorFlood:
    """A WebSocket whose server sends error-channel text without end."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.received = 0
        self.closed = False

    async def receive(self) -> aiohttp.WSMessage:
        await asyncio.sleep(0)  # a real receive yields: the test's time limit can fire
        self.received += 1
        if self.received <= 2:  # the port prefix on channel 0, then on channel 1
            payload = encode_frame(self.received - 1, port_prefix(self.port))
        else:
            payload = encode_frame(1, b"x" * 1024)
        return aiohttp.WSMessage(aiohttp.WSMsgType.BINARY, payload, None)


async def test_endless_error_text_is_cut_off() -> None:
    ws: Any = _ErrorFlood(80)
    stream = WsV4Stream(ws, 80)
    with pytest.raises(TunnelError) as err:
        async with asyncio.timeout(10):
            await stream.receive()
    assert str(err.value) == "x" * ERROR_TEXT_MAX
    assert ws.received == 2 + ERROR_TEXT_MAX // 1024
