from __future__ import annotations

import pytest

from portfwd.errors import InputError
from portfwd.tunnel.addresses import BindAddress, format_host_port, parse_addresses


def test_localhost_expands_to_both_loopbacks_not_required() -> None:
    assert parse_addresses("localhost") == [
        BindAddress("127.0.0.1", required=False),
        BindAddress("::1", required=False),
    ]


def test_explicit_addresses_are_required_and_deduplicated() -> None:
    got = parse_addresses("localhost, 127.0.0.1,[::1],::1")
    assert got == [BindAddress("127.0.0.1", True), BindAddress("::1", True)]


def test_loopback_flag() -> None:
    a, b = parse_addresses("127.0.0.1,0.0.0.0")
    assert a.loopback and not b.loopback


@pytest.mark.parametrize("text", ["example.com", "1.2.3", "", " , "])
def test_bad_addresses(text: str) -> None:
    with pytest.raises(InputError):
        parse_addresses(text)


def test_format_host_port() -> None:
    assert format_host_port("127.0.0.1", 80) == "127.0.0.1:80"
    assert format_host_port("::1", 80) == "[::1]:80"
