"""The daemon's socket protocol: JSON lines, versioned, with hard limits.

Every message is one JSON object on one line (UTF-8, ``\\n``-terminated).

- The client opens with ``{"id": 0, "op": "hello", "args": {"version": N, "client": "..."}}``;
  the daemon answers ``{"id": 0, "ok": {"version": N, "pid": ..., ...}}``, or an error of type
  ``version`` (and closes) when the versions differ: each side names both versions, so the
  user knows which one to restart.
- Then requests ``{"id": <int>, "op": "<name>", "args": {...}}``, answered by
  ``{"id": <same>, "ok": <result>}`` or ``{"id": <same>, "error": {"type": ..., "message": ...}}``,
  in any order (requests run concurrently).
- After ``subscribe``, events arrive as ``{"event": {...}}`` (`engine/serial.py`'s shape); a
  ``lagged`` event means "events were lost: read the snapshot again".

A line that is not a JSON object, too long, or names no known operation gets one
``bad-request`` error and the connection is closed: a confused client must not be able to
make the daemon guess. Engine errors (bad input, an unknown forward) are ordinary replies.
"""

from __future__ import annotations

import functools
import json
from typing import Any, NamedTuple

PROTOCOL_VERSION = 1
HELLO = "hello"  # the handshake's op: not an operation of the table (ops.py)
MAX_REQUEST_BYTES = 1 << 20  # one request line; a spec is a few hundred bytes
MAX_REPLY_BYTES = 64 << 20  # one reply line the client accepts (logs of many forwards)
MAX_CLIENTS = 64  # connections at once; one more is told so and closed
MAX_IN_FLIGHT = 32  # requests of one client running at once; beyond, its socket is not read

# Error types, as scripts and clients see them.
BAD_REQUEST = "bad-request"  # malformed, oversized, unknown op: the connection is closed
VERSION = "version"  # the client speaks another protocol version: closed
REFUSED = "refused"  # another user, too many clients: closed
INPUT = "input"  # the engine refused the input (a bad spec, a name in use)
NOT_FOUND = "not-found"  # no forward with that id or name
FAILED = "failed"  # a portfwd error while doing it (e.g. the session could not be saved)
INTERNAL = "internal"  # a bug in the daemon (its log has the traceback)


@functools.cache
def known_ops() -> frozenset[str]:
    """The handshake, then the operation table (ops.py). Looked up when a request is parsed
    (the daemon's side): a client that only sends requests does not import the table, and
    with it the engine's model (`portfwd ls` starts faster)."""
    from portfwd.daemon.ops import TABLE

    return frozenset({HELLO, *TABLE})


class ProtocolError(Exception):
    """A message that breaks the protocol; `kind` is the error type to answer with."""

    def __init__(self, message: str, kind: str = BAD_REQUEST) -> None:
        super().__init__(message)
        self.kind = kind


class Request(NamedTuple):
    id: int
    op: str
    args: dict[str, Any]


def encode(message: dict[str, Any]) -> bytes:
    """One line; compact, and never NaN/Infinity (not JSON)."""
    return json.dumps(message, separators=(",", ":"), allow_nan=False).encode() + b"\n"


def decode_line(line: bytes) -> dict[str, Any]:
    try:
        data = json.loads(line)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ProtocolError(f"not a JSON line: {exc}") from None
    except RecursionError:
        raise ProtocolError("not a JSON line: nested too deeply") from None
    except ValueError as exc:  # an integer over Python's 4,300 digits: not JSON's own error
        raise ProtocolError(f"not a JSON line: {str(exc).split(':')[0]}") from None
    if not isinstance(data, dict):
        raise ProtocolError(f"a message is a JSON object, not {type(data).__name__}")
    return data


def parse_request(line: bytes) -> Request:
    data = decode_line(line)
    rid = data.get("id")
    if not isinstance(rid, int) or isinstance(rid, bool) or not 0 <= rid < 2**53:
        raise ProtocolError('a request needs an "id": a non-negative integer')
    op = data.get("op")
    if not isinstance(op, str) or op not in known_ops():
        shown = op if isinstance(op, str) and len(op) <= 40 else type(op).__name__
        raise ProtocolError(f"unknown operation {shown!r}")
    args = data.get("args", {})
    if not isinstance(args, dict):
        raise ProtocolError('"args" must be a JSON object')
    return Request(rid, op, args)


def reply(rid: int, result: Any) -> bytes:
    return encode({"id": rid, "ok": result})


def error(rid: int | None, kind: str, message: str, **extra: Any) -> bytes:
    return encode({"id": rid, "error": {"type": kind, "message": message, **extra}})


def version_mismatch(theirs: Any, side: str) -> str:
    """The message for a version mismatch, said by `side` ("daemon" or "client")."""
    if side == "daemon":
        return (
            f"this portfwd daemon speaks protocol {PROTOCOL_VERSION}, the client {theirs!r}: "
            "use the same portfwd version for both (`portfwd daemon stop`, then start it again)"
        )
    return (
        f"the running portfwd daemon speaks protocol {theirs!r}, this portfwd "
        f"{PROTOCOL_VERSION}: stop it with the portfwd that started it, then start it again "
        "with this one"
    )


def __getattr__(name: str) -> Any:
    """`OPS`: `known_ops()`, for the callers that read it as a constant (PEP 562)."""
    if name == "OPS":
        return known_ops()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
