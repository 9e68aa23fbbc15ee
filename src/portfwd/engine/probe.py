"""One probe of a pod's port through the tunnel: does something answer there?

A forward can be `active` (listener bound, pod Ready, tunnel verified) while the program in
the pod is hung, crashed or listening elsewhere: the probe looks through the same tunnel a
client uses, on a stream of its own, so it never delays a client's bytes. Two kinds:

- `tcp`: the kubelet dials the port when the stream opens and reports a failed dial on the
  error stream ("connect: connection refused"). The probe half-closes its side and waits
  :data:`TCP_SETTLE` for that verdict; bytes, an orderly end, or silence past the settle
  (the dial worked: a failed one is reported at once) all mean the port accepted.
- `http:/PATH`: `GET PATH HTTP/1.1` with `Connection: close`; only the status line is read
  (at most :data:`HEAD_LIMIT` bytes), then the stream is reset: a huge or endless answer
  costs nothing more. 2xx and 3xx answer; 4xx/5xx, something that is not HTTP (an echo
  server, TLS), a refusal or no status line within the timeout do not, each with its reason.

Every probe ends within its timeout (opening the stream included) and holds one stream.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from portfwd.engine.probe_spec import ProbeSpec
from portfwd.errors import PortfwdError
from portfwd.safetext import escape_controls
from portfwd.tunnel.protocol import SessionLost, TunnelError, TunnelStream

HEAD_LIMIT = 4096  # bytes read for the status line; the rest of an answer is never read
SHOWN = 16  # bytes of an answer that is not HTTP quoted in the reason
TCP_SETTLE = 2.0  # (at most half the timeout) a failed dial is reported by then
MAX_TIMEOUT = 5.0
USER_AGENT = "portfwd-probe"

OpenStream = Callable[[], Awaitable[TunnelStream]]


@dataclass(frozen=True)
class ProbeResult:
    ok: bool
    text: str  # "HTTP 200 OK", "refused: ...", "not HTTP (...)", "no answer within 5 s"
    took: float  # seconds, opening the stream included


def probe_timeout(interval: float) -> float:
    """A probe must end before the next one is due, and within MAX_TIMEOUT."""
    return max(0.5, min(MAX_TIMEOUT, interval * 0.8))


async def run_probe(open_stream: OpenStream, probe: ProbeSpec, *, within: float) -> ProbeResult:
    """Probe once; never raises for what the pod or the tunnel answer (only cancellation)."""
    started = time.monotonic()

    def result(ok: bool, text: str) -> ProbeResult:
        return ProbeResult(ok, text, time.monotonic() - started)

    stream: TunnelStream | None = None
    try:
        async with asyncio.timeout(within):
            try:
                stream = await open_stream()
            except (PortfwdError, OSError) as exc:
                return result(False, f"no stream to the pod: {_short(str(exc))}")
            if probe.kind == "tcp":
                return result(*await _tcp(stream, min(TCP_SETTLE, within / 2)))
            return result(*await _http(stream, probe.path))
    except TimeoutError:
        return result(False, f"no answer within {within:g} s (timeout)")
    finally:
        if stream is not None:
            with contextlib.suppress(Exception):
                stream.abort()


async def _tcp(stream: TunnelStream, settle: float) -> tuple[bool, str]:
    try:
        await stream.send_eof()
        async with asyncio.timeout(settle):
            chunk = await stream.receive()
    except TimeoutError:
        return True, "connected"
    except SessionLost as exc:
        return False, f"tunnel lost: {_short(str(exc))}"
    except TunnelError as exc:
        return False, _refusal(str(exc))
    return True, "connected" + (" (it spoke first)" if chunk else "")


async def _http(stream: TunnelStream, path: str) -> tuple[bool, str]:
    request = (
        f"GET {path} HTTP/1.1\r\nHost: localhost\r\nUser-Agent: {USER_AGENT}\r\n"
        "Accept: */*\r\nConnection: close\r\n\r\n"
    ).encode("ascii")
    head = bytearray()
    try:
        await stream.send(request)
        while b"\n" not in head and len(head) < HEAD_LIMIT:
            chunk = await stream.receive()
            if not chunk:
                break
            head += chunk[: HEAD_LIMIT - len(head)]
            if len(head) >= SHOWN and not head.startswith(b"HTTP/"):
                break  # not HTTP: enough to show what it is
    except SessionLost as exc:
        return False, f"tunnel lost: {_short(str(exc))}"
    except TunnelError as exc:
        return False, _refusal(str(exc))
    return _status(bytes(head))


def _status(head: bytes) -> tuple[bool, str]:
    if not head:
        return False, "closed without an answer (not HTTP?)"
    if head[:1] in (b"\x15", b"\x16"):
        return False, "not HTTP: the port speaks TLS (the probe sends plain HTTP)"
    if not head.startswith(b"HTTP/"):
        return False, f"not HTTP: the answer starts with {_quote(head[:SHOWN])}"
    line = head.split(b"\n", 1)[0].rstrip(b"\r")
    parts = line.split(b" ", 2)
    if len(parts) < 2 or not parts[1].isdigit() or len(parts[1]) != 3:
        return False, f"not HTTP: a malformed status line {_quote(line[:40])}"
    code = int(parts[1])
    reason = parts[2].decode("latin-1").strip() if len(parts) > 2 else ""
    shown = escape_controls(f"HTTP {code} {reason}".strip())[:60]
    return 200 <= code < 400, shown


def _refusal(text: str) -> str:
    """The kubelet's long sentence, cut to what matters ("refused", "no route" ...)."""
    lowered = text.lower()
    if "connection refused" in lowered:
        return "refused (nothing listens on the port)"
    if "timed out" in lowered or "i/o timeout" in lowered:
        return "the pod's port did not accept (dial timeout)"
    return _short(text)


def _short(text: str, limit: int = 160) -> str:
    text = escape_controls(" ".join(text.split()))
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _quote(raw: bytes) -> str:
    return '"' + escape_controls(raw.decode("latin-1")) + '"'
