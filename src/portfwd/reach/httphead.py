"""HTTP proxy requests: the head parsed with h11, answers and the head sent on to the pod.

h11 (python-hyper, sans-I/O, strict about HTTP/1.1 framing) parses the head, so a malformed
request is a clean 400 and not a guess. Only the head is parsed: after it the bytes are
relayed as they are, so bodies, keep-alive framing and upgrades (WebSocket) pass untouched.
A plain-HTTP request through the proxy (`GET http://web.demo/ HTTP/1.1`) is sent on in
origin form (`GET / HTTP/1.1`) with `Connection: close`: the next request on the client's
connection may name another host, which this connection cannot reach.
"""

from __future__ import annotations

import base64
import hmac
from dataclasses import dataclass
from urllib.parse import urlsplit

import h11

from portfwd.reach.wire import HEAD_LIMIT, BadRequest, HeadReader

_HOP_BY_HOP = {b"proxy-authorization", b"proxy-connection", b"connection", b"keep-alive"}
_REASONS = {
    200: "OK",
    400: "Bad Request",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    407: "Proxy Authentication Required",
    502: "Bad Gateway",
}


@dataclass(frozen=True)
class Head:
    method: str
    target: str
    headers: list[tuple[bytes, bytes]]

    def header(self, name: bytes) -> str | None:
        for key, value in self.headers:
            if key == name:
                return value.decode("latin-1")
        return None


async def read_head(reader: HeadReader) -> Head:
    raw = await reader.until(b"\r\n\r\n")
    conn = h11.Connection(h11.SERVER, max_incomplete_event_size=HEAD_LIMIT)
    conn.receive_data(raw)
    try:
        event = conn.next_event()
    except h11.RemoteProtocolError as exc:
        raise BadRequest(f"malformed HTTP request: {exc}") from None
    if not isinstance(event, h11.Request):
        raise BadRequest("malformed HTTP request")
    return Head(
        event.method.decode("ascii"),
        event.target.decode("ascii", "replace"),
        [(k.lower(), v) for k, v in event.headers.raw_items()],
    )


def split_authority(authority: str, default_port: int | None) -> tuple[str, int | None]:
    """`host:port` -> (host, port); BadRequest for a port that is not a number."""
    if authority.startswith("["):  # [v6]:port
        host, _, rest = authority[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else ""
    else:
        host, sep, port = authority.rpartition(":")
        if not sep:
            host, port = authority, ""
    if not port:
        return host, default_port
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise BadRequest(f"bad port in {authority[:80]!r}")
    return host, int(port)


def absolute_target(target: str) -> tuple[str, int, str]:
    """`http://host[:port]/path?q` -> (host, port, `/path?q`)."""
    parts = urlsplit(target)
    if parts.scheme.lower() != "http" or not parts.hostname:
        raise BadRequest(f"only http:// URLs go through a plain HTTP proxy, not {target[:80]!r}")
    try:
        port = parts.port or 80
    except ValueError:
        raise BadRequest(f"bad port in {target[:80]!r}") from None
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    return parts.hostname, port, path


def origin_head(head: Head, path: str) -> bytes:
    """The request as the pod should see it: origin form, no proxy headers, one request."""
    lines = [f"{head.method} {path} HTTP/1.1".encode()]
    for key, value in head.headers:
        if key not in _HOP_BY_HOP:
            lines.append(key + b": " + value)
    lines.append(b"connection: close")
    return b"\r\n".join(lines) + b"\r\n\r\n"


def response(status: int, text: str, headers: tuple[tuple[str, str], ...] = ()) -> bytes:
    body = text.encode()
    head = [f"HTTP/1.1 {status} {_REASONS.get(status, 'Error')}"]
    head += [f"{k}: {v}" for k, v in headers]
    head += [
        "Content-Type: text/plain; charset=utf-8"
        if not any(k.lower() == "content-type" for k, _ in headers)
        else "",
        f"Content-Length: {len(body)}",
        "Connection: close",
    ]
    return "\r\n".join(h for h in head if h).encode() + b"\r\n\r\n" + body


def authorized(head: Head, credentials: tuple[str, str] | None) -> bool:
    """Proxy-Authorization: Basic, when the proxy has a password."""
    if credentials is None:
        return True
    value = head.header(b"proxy-authorization") or ""
    scheme, _, token = value.partition(" ")
    if scheme.lower() != "basic":
        return False
    try:
        user, _, password = base64.b64decode(token.strip(), validate=True).decode().partition(":")
    except (ValueError, UnicodeDecodeError):
        return False
    return hmac.compare_digest(user, credentials[0]) and hmac.compare_digest(
        password, credentials[1]
    )
