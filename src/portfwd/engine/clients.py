"""One KubeClient per (kubeconfig, context), shared by every forward that uses it.

Loading a kubeconfig reads files (and may run nothing yet: exec plugins run on first request),
so it happens in a thread. Concurrent first requests for the same key share one load.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

from portfwd.kube.client import KubeClient
from portfwd.kube.config import load_connection


class ClientPool:
    def __init__(
        self,
        kubeconfig: str | None = None,
        *,
        environ: Mapping[str, str] | None = None,
        ping_interval: float = 30.0,
    ) -> None:
        self.kubeconfig = kubeconfig
        self.ping_interval = ping_interval
        self._environ = environ
        self._clients: dict[tuple[str | None, str | None], asyncio.Task[KubeClient]] = {}
        self._closed = False

    async def get(self, context: str | None = None, kubeconfig: str | None = None) -> KubeClient:
        """The client for `context` of `kubeconfig` (None: the pool's / current ones).

        Raises ConfigError (bad kubeconfig, unknown context); a failed load is not cached.
        """
        if self._closed:
            raise RuntimeError("ClientPool is closed")
        key = (kubeconfig or self.kubeconfig, context)
        task = self._clients.get(key)
        if task is None or (task.done() and task.exception() is not None):
            task = asyncio.create_task(self._load(*key))
            self._clients[key] = task
        try:
            return await asyncio.shield(task)
        except BaseException:
            failed = task.done() and not task.cancelled() and task.exception() is not None
            if failed and self._clients.get(key) is task:  # not a newer load for the same key
                del self._clients[key]
            raise

    async def _load(self, kubeconfig: str | None, context: str | None) -> KubeClient:
        conn = await asyncio.to_thread(
            load_connection, kubeconfig, context, None, environ=self._environ
        )
        return KubeClient(conn, heartbeat=self.ping_interval or None)

    def renew_connections(self) -> None:
        """Every loaded client opens new connections for new requests (after a sleep)."""
        for task in self._clients.values():
            if task.done() and not task.cancelled() and task.exception() is None:
                task.result().renew_connections()

    async def close(self) -> None:
        self._closed = True
        tasks, self._clients = list(self._clients.values()), {}
        for task in tasks:
            if not task.done():
                task.cancel()
        if tasks:
            await asyncio.wait(tasks)
        for task in tasks:
            if not task.cancelled() and task.exception() is None:
                await task.result().close()
