"""The sandbox answers kubectl-like REST calls over HTTPS with token auth."""

from __future__ import annotations

import ssl
from typing import Any

import aiohttp

from portfwd.sandbox.cluster import SandboxCluster


async def get(sb: SandboxCluster, path: str, token: str | None) -> tuple[int, Any]:
    ctx = ssl.create_default_context(cafile=str(sb.ca_path))
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with aiohttp.ClientSession() as s, s.get(sb.url + path, ssl=ctx, headers=headers) as r:
        return r.status, await r.json()


async def test_lists_pods_with_token(sandbox: SandboxCluster) -> None:
    status, body = await get(
        sandbox, "/api/v1/namespaces/demo/pods?labelSelector=app%3Decho", sandbox.tokens.admin
    )
    assert status == 200
    assert body["kind"] == "PodList"
    assert len(body["items"]) == 2
    assert all(p["metadata"]["name"].startswith("echo-") for p in body["items"])
