"""The proxy's parsers on any input: names, SOCKS5 and HTTP heads never fail but cleanly."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from portfwd.reach import httphead, socks5
from portfwd.reach.loopback import AddressTable
from portfwd.reach.names import ClusterName, host_names, parse_name
from portfwd.reach.wire import BadRequest, HeadReader

LABEL = st.from_regex(r"[a-z0-9]([a-z0-9-]{0,10}[a-z0-9])?", fullmatch=True)


class FakeLocal:
    """What HeadReader needs of a LocalConnection: chunks in, writes collected."""

    def __init__(self, chunks: list[bytes]) -> None:
        self.chunks = list(chunks)
        self.written = b""

    async def read(self) -> bytes:
        return self.chunks.pop(0) if self.chunks else b""

    async def write(self, data: bytes) -> None:
        self.written += data


def _reader(chunks: list[bytes]) -> HeadReader:
    return HeadReader(FakeLocal(chunks))  # type: ignore[arg-type]


@given(st.text(max_size=80))
def test_parse_name_never_raises(text: str) -> None:
    name = parse_name(text)
    assert name is None or isinstance(name, ClusterName)


@given(LABEL, LABEL, st.one_of(st.just(""), LABEL), LABEL, st.booleans())
def test_every_written_name_reads_back(
    ns: str, svc: str, pod: str, context: str, default: bool
) -> None:
    for name in host_names(ns, svc, pod, context, default=default, bare=True)[1:]:
        parsed = parse_name(name)
        assert parsed is not None and (parsed.namespace, parsed.service, parsed.pod) == (
            ns,
            svc,
            pod,
        )


@given(st.lists(st.binary(min_size=1, max_size=40), max_size=6))
def test_socks5_handshake_on_any_bytes(chunks: list[bytes]) -> None:
    async def run() -> Any:
        try:
            return await socks5.handshake(_reader([b"\x05", *chunks]), None)
        except BadRequest:
            return None

    result = asyncio.run(run())
    if result is not None:
        request, answer = result
        assert (request is None) != (answer == b"")


@given(st.lists(st.binary(min_size=1, max_size=60), max_size=6))
def test_http_head_on_any_bytes(chunks: list[bytes]) -> None:
    async def run() -> None:
        try:
            head = await httphead.read_head(_reader([*chunks, b"\r\n\r\n"]))
        except BadRequest:
            return
        assert head.method

    asyncio.run(run())


def test_socks5_with_password() -> None:
    hello = b"\x05\x01\x02" + b"\x01\x04user\x06s3cret"
    request = b"\x05\x01\x00\x03\x08web.demo\x00\x50"

    async def run(chunks: list[bytes]) -> Any:
        reader = _reader(chunks)
        return await socks5.handshake(reader, ("user", "s3cret")), reader

    (req, answer), reader = asyncio.run(run([hello, request + b"GET /"]))
    assert req == socks5.Request("web.demo", 80) and answer == b""
    assert reader.rest() == b"GET /"  # what followed the request goes to the pod first
    (req, answer), _ = asyncio.run(run([b"\x05\x01\x00"]))
    assert req is None and answer == b"\x05\xff"  # no password offered: no method acceptable


def test_two_address_tables_do_not_pick_the_same_address(tmp_path: Path) -> None:
    # Two users (or two config dirs) on one machine: the same Service name must not land on
    # one 127.x address, where the second `portfwd ns` would find every port taken.
    mine = AddressTable(tmp_path / "a.json")
    theirs = AddressTable(tmp_path / "b.json")
    assert mine.address("prod", "demo", "api") != theirs.address("prod", "demo", "api")
    mine.save()
    again = AddressTable(tmp_path / "a.json")
    assert again.salt == mine.salt
    assert again.address("prod", "demo", "api") == mine.address("prod", "demo", "api")
    assert again.address("prod", "demo", "web") == mine.address("prod", "demo", "web")
