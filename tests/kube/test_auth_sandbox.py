"""End to end: the sandbox's kubeconfig, loaded by us, authenticates over real TLS.

The official client, pointed at the same kubeconfig, is the oracle for what the server says.
"""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import pytest

from portfwd.kube.config import list_contexts, load_connection
from portfwd.sandbox.cluster import SandboxCluster


async def _get(sandbox: SandboxCluster, context: str, path: str) -> tuple[int, Any]:
    conn = await asyncio.to_thread(load_connection, str(sandbox.kubeconfig_path), context)
    creds = await conn.auth.get()
    ctx = await asyncio.to_thread(conn.ssl_context, creds)
    headers = {"Authorization": f"Bearer {creds.token}"} if creds.token else {}
    timeout = aiohttp.ClientTimeout(total=20)
    async with (
        aiohttp.ClientSession(timeout=timeout) as session,
        session.get(
            conn.server + path,
            headers=headers,
            ssl=ctx if ctx is not None else True,
            server_hostname=conn.server_hostname,
        ) as resp,
    ):
        return resp.status, await resp.json(content_type=None)


def _official_status(kubeconfig: str, context: str, namespace: str) -> int:
    from kubernetes import client, config

    api = config.new_client_from_config(
        config_file=kubeconfig, context=context, persist_config=False
    )
    try:
        try:
            resp = client.CoreV1Api(api).list_namespaced_pod(namespace, _preload_content=False)
        except client.ApiException as exc:
            return int(exc.status)
        return int(resp.status)
    finally:
        api.close()


async def test_every_sandbox_context_authenticates_like_the_official_client(
    sandbox: SandboxCluster,
) -> None:
    pytest.importorskip("kubernetes")
    infos, current = await asyncio.to_thread(list_contexts, str(sandbox.kubeconfig_path))
    assert current == "sandbox"
    names = {i.name for i in infos}
    assert {"sandbox", "sandbox-cert"} <= names
    seen: dict[str, int] = {}
    for name in sorted(names):
        path = "/api/v1/namespaces/demo/pods"
        ours, _ = await _get(sandbox, name, path)
        theirs = await asyncio.to_thread(
            _official_status, str(sandbox.kubeconfig_path), name, "demo"
        )
        assert ours == theirs, f"context {name}: ours {ours}, official {theirs}"
        seen[name] = ours
    assert seen["sandbox"] == seen["sandbox-cert"] == 200
    assert seen.get("sandbox-nobody", 403) == 403  # RBAC really looked at who we are
