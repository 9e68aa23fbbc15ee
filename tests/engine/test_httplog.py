"""The HTTP request log's reader: exact exchanges for keep-alive, pipelined, chunked, HEAD,
404 and large bodies however the bytes are split; TLS, other protocols and malformed or
oversized heads stop the log with one reason, in bounded memory."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from portfwd.engine.httplog import MAX_BUFFERED, HttpExchange, HttpObserver

BIG = 300_000

CLIENT = (
    b"GET /a?x=1 HTTP/1.1\r\nHost: web\r\n\r\n"
    b"POST /upload HTTP/1.1\r\nHost: web\r\nContent-Length: "
    + str(BIG).encode()
    + b"\r\n\r\n"
    + b"u" * BIG
    + b"HEAD /h HTTP/1.1\r\nHost: web\r\n\r\n"
    b"GET /chunked HTTP/1.1\r\nHost: web\r\n\r\n"
    b"GET /missing HTTP/1.1\r\nHost: web\r\nConnection: close\r\n\r\n"
)
SERVER = (
    b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"
    b"HTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok"
    b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n"  # HEAD: no body follows
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"4\r\nabcd\r\n3\r\nefg\r\n0\r\n\r\n"
    b"HTTP/1.1 404 Not Found\r\nContent-Length: 9\r\nConnection: close\r\n\r\nnot found"
)
EXPECTED = [
    ("GET", "/a?x=1", 200, 0, 5),
    ("POST", "/upload", 201, BIG, 2),
    ("HEAD", "/h", 200, 0, 0),
    ("GET", "/chunked", 200, 0, 7),
    ("GET", "/missing", 404, 0, 9),
]


class Log:
    def __init__(self) -> None:
        self.exchanges: list[HttpExchange] = []
        self.stops: list[str] = []
        self.observer = HttpObserver(self.exchanges.append, self.stops.append)

    def rows(self) -> list[tuple[str, str, int, int, int]]:
        return [
            (e.method, e.target, e.status, e.request_bytes, e.response_bytes)
            for e in self.exchanges
        ]


def pieces(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    out, last = [], 0
    for p in [*points, len(data)]:
        out.append(data[last:p])
        last = p
    return out


def test_pipelined_requests_all_sent_before_any_answer() -> None:
    log = Log()
    log.observer.client_bytes(CLIENT)
    log.observer.server_bytes(SERVER)
    assert log.rows() == EXPECTED
    assert log.stops == []


def test_request_answer_request_answer() -> None:
    log = Log()
    requests = [b"GET /1 HTTP/1.1\r\nHost: w\r\n\r\n", b"GET /2 HTTP/1.1\r\nHost: w\r\n\r\n"]
    answer = b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc"
    for request in requests:
        log.observer.client_bytes(request)
        log.observer.server_bytes(answer)
    assert log.rows() == [("GET", "/1", 200, 0, 3), ("GET", "/2", 200, 0, 3)]


@settings(max_examples=150, deadline=None)
@given(
    client_cuts=st.lists(st.integers(min_value=0), max_size=12),
    server_cuts=st.lists(st.integers(min_value=0), max_size=12),
    order=st.lists(st.booleans(), max_size=40),
)
def test_the_same_exchanges_however_the_bytes_arrive(
    client_cuts: list[int], server_cuts: list[int], order: list[bool]
) -> None:
    log = Log()
    client = pieces(CLIENT, client_cuts)
    server = pieces(SERVER, server_cuts)
    # Interleave, but never a response byte before its request's head was sent (a real
    # server cannot answer what it has not read); the client side runs first.
    log.observer.client_bytes(client.pop(0))
    for pick_client in order:
        if pick_client and client:
            log.observer.client_bytes(client.pop(0))
        elif server and not client:
            log.observer.server_bytes(server.pop(0))
    for piece in client:
        log.observer.client_bytes(piece)
    for piece in server:
        log.observer.server_bytes(piece)
    assert log.rows() == EXPECTED
    assert log.stops == []


def test_an_early_answer_before_the_body_ends() -> None:
    log = Log()
    log.observer.client_bytes(b"POST /big HTTP/1.1\r\nHost: w\r\nContent-Length: 10\r\n\r\nabc")
    log.observer.server_bytes(b"HTTP/1.1 413 Too Large\r\nContent-Length: 0\r\n\r\n")
    log.observer.client_bytes(b"defghij" + b"GET /next HTTP/1.1\r\nHost: w\r\n\r\n")
    log.observer.server_bytes(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
    assert log.rows() == [("POST", "/big", 413, 3, 0), ("GET", "/next", 200, 0, 0)]


def test_tls_is_said_once_and_not_read() -> None:
    log = Log()
    log.observer.client_bytes(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"r" * 100)
    log.observer.server_bytes(b"\x16\x03\x03\x00\x7a")
    assert log.stops == ["TLS: encrypted traffic is not logged"] and log.exchanges == []


def test_other_protocols_are_not_http() -> None:
    redis = Log()
    redis.observer.client_bytes(b"*1\r\n$4\r\nPING\r\n")
    assert redis.stops == ["not HTTP"]
    mysql = Log()
    mysql.observer.server_bytes(b"J\x00\x00\x00\n8.0.36\x00")
    assert mysql.stops == ["not HTTP: the server spoke first"]


def test_a_huge_head_stops_the_log_in_bounded_memory() -> None:
    log = Log()
    log.observer.client_bytes(b"GET / HTTP/1.1\r\nHost: w\r\n")
    for _ in range(200):
        log.observer.client_bytes(b"X-Filler: " + b"a" * 1000 + b"\r\n")
    assert log.stops == ["not HTTP"]  # no exchange yet: h11 refused the oversized head
    assert log.observer.stopped


def test_malformed_after_a_good_exchange_stops_with_the_reason() -> None:
    log = Log()
    log.observer.client_bytes(b"GET / HTTP/1.1\r\nHost: w\r\n\r\n")
    log.observer.server_bytes(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
    log.observer.client_bytes(b"GET / HTTP/1.1\r\nHost: w\r\n\r\n")
    log.observer.server_bytes(b"NOT-HTTP garbage\r\n\r\n")
    assert len(log.exchanges) == 1
    (stop,) = log.stops
    assert stop.startswith("malformed HTTP response (") and stop.endswith("): log stopped")


def test_pipelined_requests_beyond_the_bound_stop_the_log() -> None:
    log = Log()
    log.observer.client_bytes(b"GET /first HTTP/1.1\r\nHost: w\r\n\r\n")
    one = b"POST /x HTTP/1.1\r\nHost: w\r\nContent-Length: 65536\r\n\r\n" + b"p" * 65536
    for _ in range(MAX_BUFFERED // len(one) + 2):
        log.observer.client_bytes(one)
    assert log.stops == ["more than 1 MiB of pipelined requests waiting: log stopped"]


def test_control_characters_in_the_target_are_escaped() -> None:
    log = Log()
    log.observer.client_bytes(b"GET /a%1b\x7f HTTP/1.1\r\nHost: w\r\n\r\n")
    log.observer.server_bytes(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
    assert log.stops == [] or log.exchanges == []
    for exchange in log.exchanges:
        assert "\x7f" not in exchange.target


def test_the_log_line() -> None:
    line = HttpExchange("GET", "/api", 200, 0, 1536, 0.012).line()
    assert line == "GET /api -> 200, 1.5 KiB in 12 ms"


def test_secrets_in_headers_never_reach_the_log() -> None:
    log = Log()
    log.observer.client_bytes(
        b"GET /me HTTP/1.1\r\nHost: w\r\nAuthorization: Bearer s3cr3t-token\r\n"
        b"Cookie: session=c00kie\r\nX-Api-Key: k3y\r\n\r\n"
    )
    log.observer.server_bytes(
        b"HTTP/1.1 200 OK\r\nSet-Cookie: session=n3w\r\nContent-Length: 2\r\n\r\nok"
    )
    (exchange,) = log.exchanges
    shown = repr(exchange) + exchange.line()
    for secret in ("s3cr3t", "c00kie", "k3y", "n3w", "Authorization", "Cookie"):
        assert secret not in shown


def test_a_chunked_request_body_is_counted() -> None:
    log = Log()
    log.observer.client_bytes(
        b"POST /up HTTP/1.1\r\nHost: w\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"
    )
    log.observer.server_bytes(b"HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n")
    assert log.rows() == [("POST", "/up", 201, 11, 0)]


def test_a_huge_response_head_stops_the_log_in_bounded_memory() -> None:
    log = Log()
    log.observer.client_bytes(b"GET / HTTP/1.1\r\nHost: w\r\n\r\n")
    log.observer.server_bytes(b"HTTP/1.1 200 OK\r\n")
    for _ in range(200):
        log.observer.server_bytes(b"X-Filler: " + b"a" * 1000 + b"\r\n")
    (stop,) = log.stops
    assert stop.startswith("malformed HTTP response") and log.observer.stopped
    assert log.exchanges == []
