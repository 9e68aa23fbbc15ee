"""SandboxCluster: a local Kubernetes API server subset with its controllers and fake kubelet.

This module holds the server's lifecycle: the cluster's work directory, its CA and
certificates (pki.py), seeding, the TLS listener that serves `api.py`'s app, and the kubeconfig
it writes. What the cluster does lives in the parts it stacks on (see state.py): the kubelet
side (kubelet.py), pods (pods.py), endpoint slices (endpoints.py), workload controllers
(controllers.py), seeding (seeding.py) and the controls tests and the demo use (controls.py).
Several clusters at once: fleet.py.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from pathlib import Path
from types import TracebackType

from aiohttp import web

from portfwd.sandbox.api import build_app
from portfwd.sandbox.controls import Controls
from portfwd.sandbox.kubeconfig import write_kubeconfig
from portfwd.sandbox.pki import backend_ssl_context, generate_pki, server_ssl_context
from portfwd.sandbox.requestlog import ServerLog
from portfwd.sandbox.topology import load_topology


class SandboxCluster(Controls):
    """A local Kubernetes API server subset with controllers and real TCP backends."""

    # -- lifecycle -----------------------------------------------------------------------
    async def __aenter__(self) -> SandboxCluster:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    @property
    def workdir(self) -> Path:
        assert self._workdir is not None
        return self._workdir

    async def start(self) -> None:
        if self._started:
            return
        self.topology = await asyncio.to_thread(load_topology, self._topology_source)
        try:
            if self._workdir is None:
                self._workdir = Path(
                    await asyncio.to_thread(tempfile.mkdtemp, prefix="portfwd-sandbox-")
                )
            self._workdir.mkdir(parents=True, exist_ok=True)
            self.pki = await asyncio.to_thread(generate_pki, cluster=f"portfwd-{self.name}")
            self._ssl = await asyncio.to_thread(server_ssl_context, self.pki, self.workdir)
            self.backends.tls = await asyncio.to_thread(backend_ssl_context, self.pki, self.workdir)
            self.ca_path = self.workdir / "ca.crt"
            await asyncio.to_thread(self.ca_path.write_bytes, self.pki.ca.cert_pem)
            self._seed()
            self.store.compact()
            self._started = True
            await self.start_api()
            self.kubeconfig_path = self._kubeconfig_override or (self.workdir / "kubeconfig")
            await asyncio.to_thread(
                write_kubeconfig, self.kubeconfig_path, self.url, self.pki, self.tokens, self.name
            )
        except BaseException:
            self._started = True  # so stop() releases whatever was set up
            await self.stop()
            raise

    async def stop(self) -> None:
        if not self._started:
            return
        self._started = False
        await self.stop_api()
        # A cancelled rollout re-syncs on its way out and may spawn (then-cancelled) tasks.
        while self._tasks:
            tasks = list(self._tasks)
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            self._tasks.difference_update(tasks)
        for rt in self._runtime.values():
            for w in list(rt.conns):
                w.close()
        await self.backends.stop()
        if self._own_workdir and self._workdir is not None:
            await asyncio.to_thread(shutil.rmtree, self._workdir, True)
            self._workdir = None

    async def start_api(self) -> None:
        """Listen (again) on the same port; the cluster state is untouched."""
        if self._runner is not None:
            return
        # ServerLog: a request aiohttp cannot parse is one log line, not a traceback.
        runner = web.AppRunner(
            build_app(self), access_log=None, shutdown_timeout=0.5, logger=ServerLog()
        )
        await runner.setup()
        site = web.TCPSite(runner, self.host, self.port, ssl_context=self._ssl)
        try:
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self.port = int(runner.addresses[0][1])
        host = f"[{self.host}]" if ":" in self.host else self.host
        self.url = f"https://{host}:{self.port}"
        self._runner, self._site = runner, site

    async def stop_api(self) -> None:
        """Stop listening and drop every API connection (watches, port-forwards)."""
        runner, self._runner, self._site = self._runner, None, None
        if runner is None:
            return
        self.store.close_watchers()
        await runner.cleanup()
