"""Several sandbox clusters at once, and one kubeconfig with all their contexts.

Each cluster of a fleet is a whole `SandboxCluster`: its own API server port, CA and
certificates, tokens, objects, pods and backends. Cluster i (from 0) is named `sandbox` for
i = 0 and `sandbox-<i+1>` after that; the name is its admin context, the prefix of its other
contexts (`sandbox-2-viewer`, ...) and what its HTTP backends answer on GET /cluster.

One cluster going away while the others keep serving is `fleet[i].stop_api()`, and back on
the same port (same CA, same objects) `fleet[i].start_api()`.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import Any

from portfwd.sandbox.cluster import SandboxCluster
from portfwd.sandbox.kubeconfig import (
    DEFAULT_NAME,
    kubeconfig_dict,
    merge_kubeconfigs,
    write_config,
)

MAX_CLUSTERS = 16


def fleet_cluster_name(index: int) -> str:
    """`sandbox`, `sandbox-2`, `sandbox-3`, ... for index 0, 1, 2, ..."""
    return DEFAULT_NAME if index == 0 else f"{DEFAULT_NAME}-{index + 1}"


class SandboxFleet:
    """`count` independent sandbox clusters; `kubeconfig_path` holds every one's contexts.

    `port` 0 gives each cluster a free port; another value gives cluster i `port + i`.
    `workdir` (default: a temporary one each) gives each cluster `workdir/<name>`.
    Other keyword options go to every `SandboxCluster`.
    """

    def __init__(
        self,
        count: int = 2,
        topology: Path | dict[str, Any] | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        kubeconfig_path: Path | None = None,
        workdir: Path | None = None,
        **options: Any,
    ) -> None:
        if not 1 <= count <= MAX_CLUSTERS:
            raise ValueError(f"a fleet has 1 to {MAX_CLUSTERS} clusters, not {count}")
        self.clusters = [
            SandboxCluster(
                topology,
                name=fleet_cluster_name(i),
                host=host,
                port=port + i if port else 0,
                workdir=workdir / fleet_cluster_name(i) if workdir is not None else None,
                # One cluster: its own kubeconfig is the fleet's.
                kubeconfig_path=kubeconfig_path if count == 1 else None,
                **options,
            )
            for i in range(count)
        ]
        self._kubeconfig_override = kubeconfig_path
        self._own_dir: Path | None = None
        self._started = False
        self.kubeconfig_path = Path()

    def __len__(self) -> int:
        return len(self.clusters)

    def __iter__(self) -> Iterator[SandboxCluster]:
        return iter(self.clusters)

    def __getitem__(self, index: int) -> SandboxCluster:
        return self.clusters[index]

    def cluster(self, name: str) -> SandboxCluster:
        """The cluster whose admin context is `name`."""
        for c in self.clusters:
            if c.name == name:
                return c
        raise KeyError(f"no sandbox cluster {name!r}")

    @property
    def contexts(self) -> list[str]:
        """Each cluster's admin context, in order (the first is the current context)."""
        return [c.name for c in self.clusters]

    async def __aenter__(self) -> SandboxFleet:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    async def start(self) -> None:
        """Start every cluster, then write the merged kubeconfig; all or nothing."""
        if self._started:
            return
        self._started = True
        try:
            for c in self.clusters:
                await c.start()
            if len(self.clusters) == 1:
                self.kubeconfig_path = self.clusters[0].kubeconfig_path
                return
            path = self._kubeconfig_override
            if path is None:
                self._own_dir = Path(
                    await asyncio.to_thread(tempfile.mkdtemp, prefix="portfwd-sandboxes-")
                )
                path = self._own_dir / "kubeconfig"
            merged = merge_kubeconfigs([self._config(c) for c in self.clusters])
            await asyncio.to_thread(write_config, path, merged)
            self.kubeconfig_path = path
        except BaseException:
            await self.stop()
            raise

    async def stop(self) -> None:
        """Stop every cluster (the last first) and remove what the fleet wrote for itself."""
        if not self._started:
            return
        self._started = False
        try:
            for c in reversed(self.clusters):
                await c.stop()
        finally:
            if self._own_dir is not None:
                await asyncio.to_thread(shutil.rmtree, self._own_dir, True)
                self._own_dir = None

    @staticmethod
    def _config(c: SandboxCluster) -> dict[str, Any]:
        assert c.pki is not None
        return kubeconfig_dict(c.url, c.pki, c.tokens, c.name)
