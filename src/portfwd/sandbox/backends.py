"""The sandbox's "containers": tiny TCP servers on loopback that sandbox pods forward to.

Each backend is one asyncio server on 127.0.0.1, port 0, named by a label (the pod, so a user
sees which pod answered); every HTTP answer also names the cluster (X-Sandbox-Cluster, and
GET /cluster), so a client forwarding into several clusters can tell which one it reached.
They are plain asyncio streams, not aiohttp, to stay light: a demo cluster runs dozens of them.
Every open connection is tracked so that `stop()` (or stopping one label, when its pod is
deleted) really ends it, as a dying container would.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

__all__ = ["BACKEND_KINDS", "BackendPool", "bytes_body"]

log = logging.getLogger(__name__)

# "https" is http behind TLS (the sandbox CA's certificate): what a port named https serves.
BACKEND_KINDS = ("echo", "http", "https", "line", "silent")

CHUNK = 64 * 1024
_HEADER_LIMIT = 64 * 1024  # longest request head / line a backend accepts
_MAX_BYTES = 1 << 40  # GET /bytes/N upper bound: streamed, so only a sanity limit

# GET /bytes/N returns byte i == i % 251: deterministic (clients can check every byte) and,
# 251 being prime, a lost or repeated chunk of any power-of-two size shifts the pattern.
_PATTERN_PERIOD = 251
_PATTERN_BLOCK = bytes(i % _PATTERN_PERIOD for i in range(_PATTERN_PERIOD * 261))  # ~64 KiB


def bytes_body(n: int, offset: int = 0) -> bytes:
    """What GET /bytes/N sends (bytes offset..offset+n of it), for tests to compare with."""
    start = offset % _PATTERN_PERIOD
    reps = (start + n) // len(_PATTERN_BLOCK) + 1
    return (_PATTERN_BLOCK * reps)[start : start + n]


# A backend's connection handler: (label, cluster, reader, writer).
Handler = Callable[[str, str, asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@dataclass(eq=False)
class _Backend:
    kind: str
    label: str
    server: asyncio.Server
    address: tuple[str, int]
    tasks: set[asyncio.Task[None]] = field(default_factory=set)
    writers: set[asyncio.StreamWriter] = field(default_factory=set)


class BackendPool:
    """Starts and owns backend servers; `stop()` ends every server and connection."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        cluster: str = "sandbox",
        *,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self._host = host
        self._cluster = cluster
        self.tls = tls  # for "https" backends (set once the sandbox has its CA)
        self._backends: list[_Backend] = []
        self._stopped = False

    @property
    def addresses(self) -> dict[str, list[tuple[str, int]]]:
        """label -> addresses of its running backends (diagnostics, tests)."""
        result: dict[str, list[tuple[str, int]]] = {}
        for backend in self._backends:
            result.setdefault(backend.label, []).append(backend.address)
        return result

    def open_connections(self, label: str | None = None) -> int:
        """How many client connections are open (to one label's backends, or all)."""
        return sum(len(b.writers) for b in self._backends if label in (None, b.label))

    async def start_backend(self, kind: str, label: str) -> tuple[str, int]:
        """Start one server of `kind` (echo|http|line) for `label`; returns (host, port)."""
        if kind not in BACKEND_KINDS:
            raise ValueError(f"unknown backend kind {kind!r}; expected one of {BACKEND_KINDS}")
        if self._stopped:
            raise RuntimeError("BackendPool is stopped")
        if kind == "https" and self.tls is None:
            raise RuntimeError("an https backend needs the pool's TLS context")
        serve = _HANDLERS[kind]
        holder: list[_Backend] = []

        async def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            backend = holder[0]
            task = asyncio.current_task()
            assert task is not None
            backend.tasks.add(task)
            backend.writers.add(writer)
            try:
                await serve(label, self._cluster, reader, writer)
            except (ConnectionError, asyncio.IncompleteReadError):
                pass  # the client vanished: nothing to tell anyone
            except asyncio.CancelledError:
                pass  # stop(): the task is awaited by its owner, end quietly
            except Exception:
                log.exception("backend %s (%s) failed", label, kind)
            finally:
                backend.writers.discard(writer)
                writer.close()
                # A second cancel (stop() during this close) ends the task quietly too.
                with contextlib.suppress(Exception, asyncio.CancelledError):
                    await writer.wait_closed()
                backend.tasks.discard(task)

        tls = self.tls if kind == "https" else None
        server = await asyncio.start_server(on_connect, self._host, 0, limit=_HEADER_LIMIT, ssl=tls)
        sockname = server.sockets[0].getsockname()
        backend = _Backend(kind, label, server, (str(sockname[0]), int(sockname[1])))
        holder.append(backend)
        self._backends.append(backend)
        return backend.address

    async def stop_backend(self, label: str) -> None:
        """Stop every backend started for `label` and drop its connections (pod deleted)."""
        mine = [b for b in self._backends if b.label == label]
        self._backends = [b for b in self._backends if b.label != label]
        await asyncio.gather(*(_close_backend(b) for b in mine))

    async def stop(self) -> None:
        """Close every server and every open connection, and wait for their tasks."""
        self._stopped = True
        backends, self._backends = self._backends, []
        await asyncio.gather(*(_close_backend(b) for b in backends))


async def _close_backend(backend: _Backend) -> None:
    backend.server.close()
    for writer in list(backend.writers):
        writer.transport.abort()
    tasks = list(backend.tasks)
    for task in tasks:
        task.cancel()
    if tasks:
        await asyncio.gather(*tasks, return_exceptions=True)
    with contextlib.suppress(Exception):
        await backend.server.wait_closed()


# --- echo ------------------------------------------------------------------------------------


async def _serve_echo(
    label: str, cluster: str, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> None:
    """Every byte back; drain before reading more, so a slow reader slows the sender."""
    while True:
        data = await reader.read(CHUNK)
        if not data:
            break
        writer.write(data)
        await writer.drain()
    if writer.can_write_eof():
        writer.write_eof()
    await writer.drain()


# --- silent ----------------------------------------------------------------------------------


async def _serve_silent(
    label: str, cluster: str, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> None:
    """A hung program: reads (and drops) what comes, never answers, ends when the client does."""
    while await reader.read(CHUNK):
        pass


# --- line ------------------------------------------------------------------------------------


async def _serve_line(
    label: str, cluster: str, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> None:
    """Each line answered with `<label> <line>`: shows which pod a connection reached."""
    prefix = label.encode() + b" "
    while True:
        try:
            line = await reader.readuntil(b"\n")
        except asyncio.IncompleteReadError as exc:
            if exc.partial:  # a last line without a newline still gets its answer
                writer.write(prefix + exc.partial + b"\n")
                await writer.drain()
            break
        except asyncio.LimitOverrunError:
            writer.write(prefix + b"error: line too long\n")
            await writer.drain()
            break
        writer.write(prefix + line)
        await writer.drain()


# --- http ------------------------------------------------------------------------------------

_REASONS = {
    200: "OK",
    400: "Bad Request",
    404: "Not Found",
    405: "Method Not Allowed",
    431: "Request Header Fields Too Large",
    501: "Not Implemented",
}


@dataclass
class _Request:
    method: str
    path: str
    version: str
    headers: dict[str, str]

    @property
    def keep_alive(self) -> bool:
        connection = self.headers.get("connection", "").lower()
        if self.version == "HTTP/1.0":
            return "keep-alive" in connection
        return "close" not in connection


async def _read_request(reader: asyncio.StreamReader) -> _Request | int | None:
    """The next request head; None at a clean EOF, an HTTP status for a malformed one."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError as exc:
        return None if not exc.partial.strip() else 400
    except asyncio.LimitOverrunError:
        return 431
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
        return 400
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if not line:
            continue
        name, sep, value = line.partition(":")
        if not sep:
            return 400
        headers[name.strip().lower()] = value.strip()
    return _Request(parts[0], parts[1], parts[2], headers)


async def _discard_body(reader: asyncio.StreamReader, request: _Request) -> bool:
    """Skip a request body so keep-alive stays in step; False if we cannot."""
    if "transfer-encoding" in request.headers:
        return False
    length_text = request.headers.get("content-length", "0")
    if not length_text.isdigit():
        return False
    remaining = int(length_text)
    while remaining:
        chunk = await reader.read(min(remaining, CHUNK))
        if not chunk:
            return False
        remaining -= len(chunk)
    return True


def _head(
    status: int, who: tuple[str, str], length: int, content_type: str, keep_alive: bool
) -> bytes:
    """A response head; `who` is (pod, cluster)."""
    return (
        f"HTTP/1.1 {status} {_REASONS[status]}\r\n"
        f"Content-Type: {content_type}\r\n"
        f"Content-Length: {length}\r\n"
        f"X-Sandbox-Pod: {who[0]}\r\n"
        f"X-Sandbox-Cluster: {who[1]}\r\n"
        "Server: portfwd-sandbox\r\n"
        f"Connection: {'keep-alive' if keep_alive else 'close'}\r\n"
        "\r\n"
    ).encode("latin-1")


async def _send_text(
    writer: asyncio.StreamWriter,
    status: int,
    who: tuple[str, str],
    text: str,
    *,
    keep_alive: bool,
    head_only: bool = False,
) -> None:
    body = text.encode()
    writer.write(_head(status, who, len(body), "text/plain; charset=utf-8", keep_alive))
    if not head_only:
        writer.write(body)
    await writer.drain()


async def _send_pattern(writer: asyncio.StreamWriter, n: int) -> None:
    """Stream n pattern bytes in ~64 KiB slices of one shared block (no per-request buffer)."""
    block = memoryview(_PATTERN_BLOCK)
    remaining = n
    while remaining:
        size = min(remaining, len(block))
        writer.write(block[:size])
        remaining -= size
        await writer.drain()


async def _serve_http(
    label: str, cluster: str, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> None:
    """GET / names the pod, /cluster the cluster, /healthz says ok, /bytes/N streams N
    bytes; others 404."""
    who = (label, cluster)
    while True:
        request = await _read_request(reader)
        if request is None:
            return
        if isinstance(request, int):
            await _send_text(writer, request, who, f"{_REASONS[request]}\n", keep_alive=False)
            return
        keep_alive = request.keep_alive and await _discard_body(reader, request)
        head_only = request.method == "HEAD"
        path = request.path.split("?", 1)[0]
        if request.method not in ("GET", "HEAD"):
            await _send_text(
                writer, 405, who, "only GET and HEAD are served\n", keep_alive=keep_alive
            )
        elif path == "/":
            text = f"hello from {label}\n"
            await _send_text(writer, 200, who, text, keep_alive=keep_alive, head_only=head_only)
        elif path == "/cluster":
            text = f"{cluster}\n"
            await _send_text(writer, 200, who, text, keep_alive=keep_alive, head_only=head_only)
        elif path == "/healthz":
            await _send_text(writer, 200, who, "ok\n", keep_alive=keep_alive, head_only=head_only)
        elif path.startswith("/bytes/"):
            count = path[len("/bytes/") :]
            if not count.isdigit() or not count.isascii() or int(count) > _MAX_BYTES:
                await _send_text(
                    writer, 400, who, f"bad byte count {count!r}\n", keep_alive=keep_alive
                )
            else:
                n = int(count)
                ctype = "application/octet-stream"
                writer.write(_head(200, who, n, ctype, keep_alive))
                if not head_only:
                    await _send_pattern(writer, n)
                await writer.drain()
        else:
            await _send_text(writer, 404, who, "404 page not found\n", keep_alive=keep_alive)
        if not keep_alive:
            return


_HANDLERS: dict[str, Handler] = {
    "echo": _serve_echo,
    "http": _serve_http,
    "https": _serve_http,  # the same server; TLS is the pool's (start_server's ssl=)
    "line": _serve_line,
    "silent": _serve_silent,
}
