"""Reading HTTP/1.x requests and responses off a forwarded connection, for the request log.

An observer is fed copies of the bytes each way (it never holds up or changes them) and
reports one :class:`HttpExchange` per completed request/response pair. h11 does the parsing
(two state machines: one reads the client's side as a server would, one the pod's side as a
client would), so keep-alive, pipelining, chunked bodies, HEAD and 1xx answers are read as
HTTP defines them rather than as a regular expression guesses. What is not HTTP (TLS, a
database protocol, garbage) is said once and the observer stops; so does anything
malformed or larger than the bounds below: memory per connection stays bounded whatever
the peer sends. Bodies are counted, never kept; headers are not reported at all.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import h11

from portfwd.safetext import escape_controls
from portfwd.tunnel.protocol import TunnelStream

log = logging.getLogger(__name__)

MAX_HEAD = 64 * 1024  # request or response line plus headers
MAX_BUFFERED = 1024 * 1024  # bytes read ahead while a pipelined request waits its turn
MAX_TARGET_SHOWN = 200
TLS_RECORD = (0x16, 0x03)  # handshake record, SSL 3.0 / TLS 1.x


@dataclass(frozen=True)
class HttpExchange:
    method: str
    target: str  # the request target as sent (path and query), control characters escaped
    status: int
    request_bytes: int  # body bytes
    response_bytes: int
    seconds: float  # from the request's head to the response's last byte
    http_version: str = "1.1"

    def line(self) -> str:
        """The log line: `GET /api/users -> 200, 1.2 KiB in 12 ms`."""
        from portfwd.humanize import human_bytes

        ms = self.seconds * 1000
        took = f"{ms:.0f} ms" if ms >= 1 else f"{ms:.2f} ms"
        sent = f", sent {human_bytes(self.request_bytes)}" if self.request_bytes else ""
        return (
            f"{self.method} {self.target} -> {self.status}, "
            f"{human_bytes(self.response_bytes)} in {took}{sent}"
        )


@dataclass
class _Pending:
    method: str
    target: str
    started: float
    request_bytes: int = 0


class HttpObserver:
    """One connection's request log. `on_exchange` gets each completed exchange; `on_stop`
    gets, once, why the log stopped for this connection (not HTTP, TLS, malformed, too big)."""

    def __init__(
        self,
        on_exchange: Callable[[HttpExchange], None],
        on_stop: Callable[[str], None],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._on_exchange = on_exchange
        self._on_stop = on_stop
        self._clock = clock
        self._requests = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_HEAD)
        self._responses = h11.Connection(h11.CLIENT, max_incomplete_event_size=MAX_HEAD)
        self._pending: deque[_Pending] = deque()
        self._current: _Pending | None = None  # the request whose body is being read
        self._response_bytes = 0
        self._status = 0
        self._seen_any = False
        self._held = 0  # bytes fed to the request side while it waits for a response
        self._answered = False  # the response came before the request's end
        self.stopped = False
        self.exchanges = 0

    # --- the two directions -------------------------------------------------------------

    def client_bytes(self, data: bytes) -> None:
        if self.stopped or not data:
            return
        if not self._seen_any:
            self._seen_any = True
            if len(data) >= 2 and (data[0], data[1]) == TLS_RECORD:
                self.stop("TLS: encrypted traffic is not logged")
                return
            if not 0x41 <= data[0] <= 0x5A:  # a method starts with a capital letter
                self.stop("not HTTP")
                return
        try:
            self._requests.receive_data(data)
            self._held += len(data)
            self._read_requests()
        except h11.ProtocolError as exc:
            self._malformed("request", exc)
            return
        if self._held > MAX_BUFFERED:
            self.stop("more than 1 MiB of pipelined requests waiting: log stopped")

    def server_bytes(self, data: bytes) -> None:
        if self.stopped or not data:
            return
        if not self._seen_any:
            self.stop("not HTTP: the server spoke first")
            return
        if not self._pending:
            self.stop("not HTTP: the server answered no request")
            return
        try:
            self._responses.receive_data(data)
            self._read_responses()
        except h11.ProtocolError as exc:
            self._malformed("response", exc)

    def close(self) -> None:
        """The connection ended: nothing more is reported."""
        self.stopped = True

    # --- parsing --------------------------------------------------------------------------

    def _read_requests(self) -> None:
        while not self.stopped:
            event = self._requests.next_event()
            if event is h11.NEED_DATA or event is h11.PAUSED:
                return
            if isinstance(event, h11.Request):
                target = escape_controls(event.target.decode("latin-1"))
                if len(target) > MAX_TARGET_SHOWN:
                    target = target[: MAX_TARGET_SHOWN - 1] + "…"
                pending = _Pending(event.method.decode("latin-1"), target, self._clock())
                self._pending.append(pending)
                self._current = pending
                host = next((bytes(v) for k, v in event.headers if k == b"host"), b"x")
                # The mirror request tells the response reader what to expect (HEAD, keep-alive)
                # without carrying the body.
                self._responses.send(
                    h11.Request(
                        method=event.method,
                        target=event.target,
                        headers=[(b"Host", host), (b"Content-Length", b"0")],
                        http_version=event.http_version,
                    )
                )
                self._responses.send(h11.EndOfMessage())
            elif isinstance(event, h11.Data):
                if self._current is not None:
                    self._current.request_bytes += len(event.data)
            elif isinstance(event, h11.EndOfMessage):
                self._current = None
                self._held = 0
                if self._answered:  # the pod answered before the request's body was all sent
                    self._answered = False
                    self._next_request()
            elif isinstance(event, h11.ConnectionClosed):
                return

    def _read_responses(self) -> None:
        while not self.stopped:
            event = self._responses.next_event()
            if event is h11.NEED_DATA or event is h11.PAUSED:
                return
            if isinstance(event, h11.InformationalResponse):
                if event.status_code == 101:
                    self.stop("upgraded (101 Switching Protocols): the rest is not HTTP")
                continue
            if isinstance(event, h11.Response):
                self._status = event.status_code
                self._response_bytes = 0
            elif isinstance(event, h11.Data):
                self._response_bytes += len(event.data)
            elif isinstance(event, h11.EndOfMessage):
                self._finish()
            elif isinstance(event, h11.ConnectionClosed):
                return

    def _finish(self) -> None:
        if not self._pending:
            self.stop("not HTTP: a response without a request")
            return
        done = self._pending.popleft()
        self.exchanges += 1
        self._on_exchange(
            HttpExchange(
                method=done.method,
                target=done.target,
                status=self._status,
                request_bytes=done.request_bytes,
                response_bytes=self._response_bytes,
                seconds=max(0.0, self._clock() - done.started),
            )
        )
        # Both readers move on to the next request of this connection, if it stays open.
        if self._responses.our_state is h11.MUST_CLOSE or self._responses.their_state in (
            h11.MUST_CLOSE,
            h11.CLOSED,
        ):
            self.stopped = True
            return
        self._responses.start_next_cycle()
        if self._requests.their_state is h11.DONE:
            self._next_request()
        else:
            self._answered = True

    def _next_request(self) -> None:
        """Let the request reader go on to the next request (it waits for "our" response)."""
        self._requests.send(h11.Response(status_code=200, headers=[(b"Content-Length", b"0")]))
        self._requests.send(h11.EndOfMessage())
        if self._requests.our_state is h11.MUST_CLOSE:
            self.stopped = True
            return
        self._requests.start_next_cycle()
        self._read_requests()

    def _malformed(self, side: str, exc: h11.ProtocolError) -> None:
        if self.exchanges == 0 and side == "request":
            self.stop("not HTTP")
        else:
            self.stop(f"malformed HTTP {side} ({escape_controls(str(exc))}): log stopped")

    def stop(self, why: str) -> None:
        """Stop reading, and say why (once)."""
        if not self.stopped:
            self.stopped = True
            self._on_stop(why)


class ObservedStream:
    """A tunnel stream whose bytes an :class:`HttpObserver` also reads. The observer is fed
    from a callback scheduled after each chunk was handed on (`call_soon`, in order), so
    parsing never delays or touches the bytes; a failure of the observer stops only it."""

    def __init__(self, inner: TunnelStream, observer: HttpObserver) -> None:
        self._inner = inner
        self._observer = observer
        self._loop = asyncio.get_running_loop()
        self.half_close = inner.half_close

    def _feed(self, read: Callable[[bytes], None], data: bytes) -> None:
        try:
            read(data)
        except Exception as exc:  # a bug in the log must not reach the connection
            log.exception("HTTP log reader failed")
            self._observer.stop(f"internal error of the HTTP log: {exc!r}")

    async def send(self, data: bytes) -> None:
        await self._inner.send(data)
        if not self._observer.stopped:
            self._loop.call_soon(self._feed, self._observer.client_bytes, data)

    async def send_eof(self) -> None:
        await self._inner.send_eof()

    async def receive(self) -> bytes:
        data = await self._inner.receive()
        if data and not self._observer.stopped:
            self._loop.call_soon(self._feed, self._observer.server_bytes, data)
        return data

    async def close(self) -> None:
        await self._inner.close()

    def abort(self) -> None:
        self._inner.abort()

    @property
    def server_closing(self) -> str | None:
        return self._inner.server_closing

    @property
    def error(self) -> str | None:
        return self._inner.error
