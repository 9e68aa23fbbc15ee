"""What one probe makes of what comes back (engine/probe.py), with scripted streams: the
reason words, and bounded time and memory whatever the pod sends."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from portfwd.engine.probe import HEAD_LIMIT, run_probe
from portfwd.engine.probe_spec import ProbeSpec, parse_probe
from portfwd.errors import InputError
from portfwd.tunnel.protocol import SessionLost, TunnelError, TunnelStream


class Scripted:
    """A TunnelStream whose answers come from an iterator: bytes, b"" (end), an exception,
    or None (hang)."""

    half_close = True

    def __init__(self, answers: Iterator[bytes | BaseException | None]) -> None:
        self.answers = answers
        self.sent = b""
        self.received = 0
        self.aborted = False

    async def send(self, data: bytes) -> None:
        self.sent += data

    async def send_eof(self) -> None:
        return None

    async def receive(self) -> bytes:
        answer = next(self.answers, b"")
        if answer is None:
            await asyncio.Event().wait()
        if isinstance(answer, BaseException):
            raise answer
        assert isinstance(answer, bytes)
        self.received += len(answer)
        return answer

    async def close(self) -> None:
        self.aborted = True

    def abort(self) -> None:
        self.aborted = True

    @property
    def server_closing(self) -> str | None:
        return None

    @property
    def error(self) -> str | None:
        return None


async def probe(
    answers: Iterator[bytes | BaseException | None], spec: str = "http:/healthz", within: float = 5
) -> tuple[bool, str, Scripted]:
    stream = Scripted(answers)

    async def open_stream() -> TunnelStream:
        return stream

    parsed = parse_probe(spec)
    assert isinstance(parsed, ProbeSpec)
    result = await run_probe(open_stream, parsed, within=within)
    return result.ok, result.text, stream


async def test_http_ok_reads_only_the_status_line_of_an_endless_answer() -> None:
    def endless() -> Iterator[bytes]:
        yield b"HTTP/1.1 200 OK\r\nContent-Length: 99999999999\r\n\r\n"
        while True:
            yield b"x" * 65536

    ok, text, stream = await probe(endless())
    assert (ok, text) == (True, "HTTP 200 OK")
    assert stream.received < 100 and stream.aborted  # never read the body; stream reset
    assert stream.sent.startswith(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n")


async def test_a_status_line_that_never_ends_is_bounded() -> None:
    def garbage() -> Iterator[bytes]:
        yield b"HTTP/1.1 "
        while True:
            yield b"9" * 1000

    ok, text, stream = await probe(garbage())
    assert not ok and text.startswith("not HTTP: a malformed status line")
    assert stream.received <= HEAD_LIMIT + 1000


@pytest.mark.parametrize(
    ("answers", "expected"),
    [
        ([b"HTTP/1.0 302 Found\r\n"], (True, "HTTP 302 Found")),
        ([b"HTTP/1.1 404 Not Found\r\n\r\n"], (False, "HTTP 404 Not Found")),
        ([b"HTTP/1.1 503 Service Unavailable\r\n"], (False, "HTTP 503 Service Unavailable")),
        ([b"HT", b"TP/1.1 2", b"00 OK\r\n"], (True, "HTTP 200 OK")),
        (
            [b"SSH-2.0-OpenSSH_9.6\r\n"],
            (False, 'not HTTP: the answer starts with "SSH-2.0-OpenSSH_"'),
        ),
        (
            [b"\x15\x03\x01\x00\x02\x02\x46"],
            (False, "not HTTP: the port speaks TLS (the probe sends plain HTTP)"),
        ),
        ([b""], (False, "closed without an answer (not HTTP?)")),
        ([b"HTTP/1.1 200 \x1b[31mOK\r\n"], (True, "HTTP 200 \\x1b[31mOK")),
        (
            [
                TunnelError(
                    "error forwarding port 8080 to pod web: dial tcp: connect: connection refused"
                )
            ],
            (False, "refused (nothing listens on the port)"),
        ),
        (
            [SessionLost("the API server closed the tunnel")],
            (False, "tunnel lost: the API server closed the tunnel"),
        ),
    ],
)
async def test_http_answers(
    answers: list[bytes | BaseException], expected: tuple[bool, str]
) -> None:
    ok, text, _ = await probe(iter(answers))
    assert (ok, text) == expected


async def test_a_hung_port_is_a_timeout_within_the_limit() -> None:
    ok, text, stream = await probe(iter([None]), within=0.2)
    assert (ok, text) == (False, "no answer within 0.2 s (timeout)")
    assert stream.aborted


async def test_tcp_accepts_silence_and_reports_refusal() -> None:
    assert (await probe(iter([None]), "tcp", within=0.2))[:2] == (True, "connected")
    assert (await probe(iter([b""]), "tcp"))[:2] == (True, "connected")
    assert (await probe(iter([b"+OK\r\n"]), "tcp"))[:2] == (True, "connected (it spoke first)")
    refused = TunnelError("dial tcp 127.0.0.1:5432: connect: connection refused")
    assert (await probe(iter([refused]), "tcp"))[:2] == (
        False,
        "refused (nothing listens on the port)",
    )


async def test_no_stream_at_all() -> None:
    async def open_stream() -> TunnelStream:
        raise TunnelError("no pod to probe right now")

    result = await run_probe(open_stream, ProbeSpec("tcp"), within=1)
    assert (result.ok, result.text) == (False, "no stream to the pod: no pod to probe right now")


@pytest.mark.parametrize(
    ("text", "parsed"),
    [("", None), ("off", None), ("tcp", "tcp"), ("http", "http:/"), ("http:/x?y=1", "http:/x?y=1")],
)
def test_probe_texts(text: str, parsed: str | None) -> None:
    probe_spec = parse_probe(text)
    assert (probe_spec.text if probe_spec else None) == parsed


def test_a_bad_probe_is_one_line() -> None:
    with pytest.raises(InputError, match='unknown probe "grpc"; use tcp, or http:/PATH'):
        parse_probe("grpc")
