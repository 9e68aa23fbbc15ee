"""A pod's log, followed: `GET .../pods/NAME/log?follow=true`, as `kubectl logs -f` reads it.

The API server sends the log as chunked plain text and keeps the response open while the
container runs; this yields it line by line. Lines are text from the cluster: control
characters are escaped here, a line is cut at :data:`MAX_LINE` characters (a pod that writes
megabytes without a newline does not grow memory), and invalid UTF-8 is replaced (in
:class:`LineSplitter`: the stream itself yields bytes, so a reader over its budget can count
lines without decoding them). A refusal
is the API's error in one line: a 403 names the right that is missing (`get pods/log in
namespace X`), a 400 the kubelet's reason (a container that is not running yet).
"""

from __future__ import annotations

import ssl
from collections.abc import AsyncGenerator

import aiohttp

from portfwd.kube.http import HttpCore
from portfwd.safetext import escape_controls

MAX_LINE = 4096  # characters kept of one line (the rest is cut, marked with …)
READ_CHUNK = 64 * 1024


def pod_log_path(ns: str, pod: str) -> str:
    return f"/api/v1/namespaces/{ns}/pods/{pod}/log"


async def follow_pod_log(
    client: HttpCore,
    ns: str,
    pod: str,
    container: str | None = None,
    *,
    tail_lines: int = 100,
) -> AsyncGenerator[bytes, None]:
    """The last `tail_lines` lines of the container's log, then what it writes next, as the
    bytes arrive, until the API server ends the stream (the container stopped, the pod
    went); :class:`LineSplitter` makes lines of them. ApiError for a refusal,
    ClusterUnreachable when the connection fails."""
    params = {"follow": "true", "tailLines": str(tail_lines)}
    if container:
        params["container"] = container
    what = f"the log of pod {pod}" + (f" (container {container})" if container else "")
    session = client.http_session()
    url = client.url(pod_log_path(ns, pod))
    # A followed log may be quiet for hours: no read timeout (TCP keepalive notices a dead
    # connection, see http.keepalive_socket).
    timeout = aiohttp.ClientTimeout(
        total=None, connect=client.connect_timeout, sock_connect=client.connect_timeout
    )
    for attempt in (1, 2):
        options = await client.request_options()
        options["headers"] = {**options["headers"], "Accept": "text/plain, */*"}
        try:
            resp = await session.get(url, params=params, **options, timeout=timeout)
        except (aiohttp.ClientError, TimeoutError, ssl.SSLError) as exc:
            raise client.connection_error(exc, f"reading {what}") from None
        async with resp:
            if resp.status == 401 and attempt == 1:
                client.refresh_credentials()
                continue
            if resp.status >= 400:
                try:
                    body = await resp.content.read(64 * 1024)
                except (aiohttp.ClientError, TimeoutError):
                    body = b""
                raise client.status_error(resp.status, body, what=f"reading {what}", ns=ns)
            try:
                async for chunk in resp.content.iter_chunked(READ_CHUNK):
                    yield chunk
            except (aiohttp.ClientError, TimeoutError) as exc:
                raise client.connection_error(exc, f"reading {what}") from None
            return


class LineSplitter:
    """Bytes in, whole lines out (escaped, each at most MAX_LINE characters): what is held
    between two chunks is at most one line's worth."""

    def __init__(self) -> None:
        self._held = bytearray()
        self._cut = False  # the held line was already cut: skip to its end

    def feed(self, chunk: bytes) -> list[str]:
        out: list[str] = []
        start = 0
        while True:
            end = chunk.find(b"\n", start)
            if end < 0:
                break
            if self._cut:
                self._cut = False
                self._held.clear()
            else:
                self._held += chunk[start:end]
                out.append(_text(bytes(self._held)))
                self._held.clear()
            start = end + 1
        if not self._cut:
            self._held += chunk[start:]
            if len(self._held) > MAX_LINE * 4:  # at most 4 bytes a character
                out.append(_text(bytes(self._held)))
                self._held.clear()
                self._cut = True
        return out

    def skip(self, chunk: bytes) -> int:
        """Pass over `chunk` without reading it (the reader is over its budget): the number
        of lines it ends. The line it leaves open is dropped too."""
        ended = chunk.count(b"\n")
        if ended:
            self._held.clear()
            self._cut = not chunk.endswith(b"\n")
        elif chunk:
            self._cut = True
        return ended

    def finish(self) -> str | None:
        if self._held and not self._cut:
            return _text(bytes(self._held))
        return None


def _text(raw: bytes) -> str:
    text = escape_controls(raw.decode("utf-8", "replace").rstrip("\r"))
    if len(text) > MAX_LINE:
        text = text[: MAX_LINE - 1] + "…"
    return text
