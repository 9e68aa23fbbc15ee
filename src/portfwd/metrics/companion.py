"""The metrics endpoint run inside the daemon (`portfwd daemon --metrics ADDR:PORT`), on the
daemon's engine, as one of its companions. Unlike the proxy, an address it cannot bind does
not stop the daemon: the forwards matter more than their counters (a warning in the log and
in `portfwd daemon status`)."""

from __future__ import annotations

import logging
from typing import Any

from portfwd.engine.manager import Manager
from portfwd.errors import PortfwdError
from portfwd.metrics.server import MetricsServer

log = logging.getLogger(__name__)


class DaemonMetrics:
    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port
        self.server: MetricsServer | None = None
        self.problem = ""

    async def start(self, manager: Manager) -> None:
        server = MetricsServer(manager.snapshot, manager.open_connections, self.host, self.port)
        try:
            await server.start()
        except PortfwdError as exc:
            self.problem = str(exc)
            log.warning("%s", exc)
            return
        self.server = server

    async def close(self) -> None:
        server, self.server = self.server, None
        if server is not None:
            await server.close()

    def status(self) -> dict[str, Any]:
        if self.server is not None:
            return {"metrics": {"url": self.server.url, "scrapes": self.server.scrapes}}
        return {"metrics": {"error": self.problem}} if self.problem else {}
