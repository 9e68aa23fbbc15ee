"""The proxy as a setting of the daemon (`portfwd daemon --proxy ADDR:PORT [--proxy-pac]`):
the same :class:`ProxyServer` as `portfwd proxy`, run on the daemon's engine as one of its
companions (`portfwd.daemon.companion`), so proxied connections share the sessions, pods and
watches of the daemon's forwards. Loopback only: the daemon takes no proxy password."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from portfwd.engine.dial import Dialer
from portfwd.engine.manager import Manager
from portfwd.reach.names import context_label
from portfwd.reach.proxy import ProxyServer
from portfwd.tunnel.addresses import BindAddress, format_host_port

log = logging.getLogger(__name__)


class DaemonProxy:
    def __init__(
        self,
        host: str,
        port: int,
        *,
        pac: bool,
        contexts: Sequence[str | None] = (None,),
        kubeconfig: str | None = None,
    ) -> None:
        self.host = host
        self.requested_port = port
        self.pac = pac
        self.contexts = list(contexts) or [None]
        self.kubeconfig = kubeconfig
        self.server: ProxyServer | None = None
        self._dialer: Dialer | None = None
        self._labels: list[str] = []

    async def start(self, manager: Manager) -> None:
        """Resolve the contexts (an unknown one: PortfwdError) and listen (a port in use:
        PortfwdError); the daemon does not start without it."""
        assert manager.informers is not None, "the proxy follows pods through informers"
        clients = {}
        for ctx in self.contexts:
            client = await manager.clients.get(ctx, self.kubeconfig)
            clients[context_label(client.context)] = client
        self._labels = list(clients)
        self._dialer = Dialer(manager.informers, manager.tunnels)
        server = ProxyServer(self._dialer, clients, self._labels[0], pac=self.pac, on_log=self._log)
        try:
            await server.start(BindAddress(self.host, True), self.requested_port)
        except BaseException:
            self._dialer.close()
            self._dialer = None
            raise
        self.server = server
        log.info("proxy (SOCKS5 and HTTP) on %s", self.where)

    @staticmethod
    def _log(line: str) -> None:
        log.info("proxy: %s", line)

    @property
    def where(self) -> str:
        port = self.server.port if self.server is not None else self.requested_port
        return format_host_port(self.host, port)

    async def close(self) -> None:
        server, self.server = self.server, None
        if server is not None:
            await server.close()
        if self._dialer is not None:
            self._dialer.close()
            self._dialer = None

    def status(self) -> dict[str, Any]:
        if self.server is None:
            return {}
        return {
            "proxy": {
                "listen": self.where,
                "contexts": self._labels,
                "pac": f"http://{self.where}/proxy.pac" if self.pac else None,
                "served": self.server.served,
            }
        }
