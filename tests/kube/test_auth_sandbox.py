"""End to end: the sandbox's kubeconfig, loaded by us, authenticates over real TLS.

The official client, pointed at the same kubeconfig, is the oracle for what the server says.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from portfwd.kube.config import ClusterConnection, list_contexts, load_connection
from portfwd.sandbox.cluster import SandboxCluster
from tests.kube.test_config_kit import b64, base_env, write, write_plugin


async def _get(sandbox: SandboxCluster, context: str, path: str) -> tuple[int, Any]:
    conn = await asyncio.to_thread(load_connection, str(sandbox.kubeconfig_path), context)
    return await _get_with(conn, path)


async def _get_with(conn: ClusterConnection, path: str) -> tuple[int, Any]:
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


async def test_exec_token_refreshed_after_401(sandbox: SandboxCluster, tmp_path: Path) -> None:
    admin = await asyncio.to_thread(load_connection, str(sandbox.kubeconfig_path), "sandbox")
    good = (await admin.auth.get()).token
    assert good is not None and admin.ca_pem is not None
    plugin = write_plugin(tmp_path / "bin")
    current = write(tmp_path / "current-token", "stale-token")
    kc = write(
        tmp_path / "kc",
        f"""apiVersion: v1
kind: Config
current-context: x
clusters:
- name: s
  cluster: {{server: "{admin.server}", certificate-authority-data: {b64(admin.ca_pem)}}}
contexts: [{{name: x, context: {{cluster: s, user: e}}}}]
users:
- name: e
  user:
    exec:
      apiVersion: client.authentication.k8s.io/v1
      command: {plugin}
      args: [from-file, {current}]
      interactiveMode: Never
""",
    )
    conn = await asyncio.to_thread(load_connection, str(kc), None, None, environ=base_env(tmp_path))
    assert (await _get_with(conn, "/api/v1/namespaces/demo/pods"))[0] == 401
    current.write_text(good)  # the user logs in again
    assert (await _get_with(conn, "/api/v1/namespaces/demo/pods"))[0] == 401  # still cached
    conn.auth.invalidate()  # what the client does after the 401
    assert (await _get_with(conn, "/api/v1/namespaces/demo/pods"))[0] == 200
