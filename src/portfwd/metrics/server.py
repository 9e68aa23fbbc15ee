"""`--metrics ADDR:PORT`: an HTTP endpoint serving `GET /metrics` from an engine.

Loopback by default; another address is the user's explicit choice and gets a warning (the
counters name clusters, namespaces and pods). A port that cannot be bound is one line and
nothing else: the forwards run without it. The sample is taken on the engine's loop (a few
attribute reads per forward) and encoded in a worker thread, so a scrape of 1,000 forwards
never holds the loop that moves bytes.
"""

from __future__ import annotations

import asyncio
import errno
import ipaddress
import logging
from collections.abc import Callable

from aiohttp import web

from portfwd.engine.model import ConnectionInfo, ForwardSnapshot
from portfwd.errors import InputError, PortfwdError
from portfwd.metrics.exposition import encode, sample

log = logging.getLogger(__name__)

DEFAULT_PORT = 9465


def metrics_address(text: str) -> tuple[str, int]:
    """`ADDR:PORT`, `[::1]:PORT` or `:PORT` (loopback); port 0 picks a free one."""
    host, sep, port = text.strip().rpartition(":")
    host = host.strip("[]") or "127.0.0.1"
    if not sep or not port.isdigit() or int(port) > 65535:
        raise InputError(f"--metrics {text!r}: use ADDRESS:PORT, e.g. 127.0.0.1:{DEFAULT_PORT}")
    try:
        ipaddress.ip_address(host)
    except ValueError:
        raise InputError(f"--metrics {text!r}: the address must be an IP address") from None
    return host, int(port)


def is_loopback(host: str) -> bool:
    return ipaddress.ip_address(host).is_loopback


class MetricsServer:
    def __init__(
        self,
        snapshot: Callable[[], list[ForwardSnapshot]],
        open_connections: Callable[[str], list[ConnectionInfo]],
        host: str,
        port: int,
    ) -> None:
        self._snapshot = snapshot
        self._open_connections = open_connections
        self.host = host
        self.requested_port = port
        self.port = 0
        self.scrapes = 0
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port or self.requested_port}/metrics"

    async def start(self) -> None:
        """Listen; PortfwdError (one line) when the address cannot be bound."""
        app = web.Application()
        app.router.add_get("/metrics", self._metrics)
        runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await runner.setup()
        site = web.TCPSite(runner, self.host, self.requested_port, reuse_address=True)
        try:
            await site.start()
        except OSError as exc:
            await runner.cleanup()
            why = (
                "is in use"
                if exc.errno == errno.EADDRINUSE
                else f"cannot be bound ({exc.strerror})"
            )
            raise PortfwdError(
                f"metrics address {self.host}:{self.requested_port} {why}; the forwards run "
                "without the endpoint (pick another --metrics ADDR:PORT)"
            ) from None
        self._runner = runner
        server = site._server  # the bound socket tells which port 0 became
        sockets = getattr(server, "sockets", None) or []
        self.port = sockets[0].getsockname()[1] if sockets else self.requested_port
        log.info("metrics on %s", self.url)

    async def _metrics(self, request: web.Request) -> web.Response:
        taken = sample(self._snapshot, self._open_connections)
        body, content_type = await asyncio.to_thread(encode, taken, request.headers.get("Accept"))
        self.scrapes += 1
        return web.Response(body=body, headers={"Content-Type": content_type})

    async def close(self) -> None:
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()
