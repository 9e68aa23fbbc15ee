"""The v4 frame codec and the port prefix, without a network."""

from __future__ import annotations

import base64

import pytest

from portfwd.tunnel.protocol import TunnelError
from portfwd.tunnel.ws_v4 import (
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
