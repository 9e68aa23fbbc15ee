"""Bounded helpers for the sandbox tests: kubectl subprocesses and raw HTTPS calls."""

from __future__ import annotations

import asyncio
import contextlib
import json
import ssl
from collections.abc import AsyncIterator
from typing import Any

import aiohttp

from portfwd.sandbox.cluster import SandboxCluster
from tests.subproc import run

KUBECTL_TIMEOUT = 60.0


def kubectl_base(sb: SandboxCluster) -> list[str]:
    """kubectl with the sandbox kubeconfig and a private discovery cache (not ~/.kube)."""
    return [
        "kubectl",
        "--kubeconfig",
        str(sb.kubeconfig_path),
        "--cache-dir",
        str(sb.workdir / "kubectl-cache"),
    ]


async def kubectl(
    sb: SandboxCluster, *args: str, context: str | None = None
) -> tuple[int, str, str]:
    """Run kubectl against the sandbox; killed if it outlives KUBECTL_TIMEOUT."""
    argv = [*kubectl_base(sb), "--request-timeout=30s"]
    if context:
        argv += ["--context", context]
    return await run(*argv, *args, limit=KUBECTL_TIMEOUT)


async def kubectl_ok(sb: SandboxCluster, *args: str, context: str | None = None) -> str:
    rc, out, err = await kubectl(sb, *args, context=context)
    assert rc == 0, f"kubectl {' '.join(args)} failed ({rc}): {err}"
    return out


def ssl_ctx(sb: SandboxCluster, cert: bool = False) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(sb.ca_path))
    if cert:
        assert sb.pki is not None
        certfile = sb.workdir / "test-client.crt"
        keyfile = sb.workdir / "test-client.key"
        certfile.write_bytes(sb.pki.client.cert_pem)
        keyfile.write_bytes(sb.pki.client.key_pem)
        ctx.load_cert_chain(str(certfile), str(keyfile))
    return ctx


async def call(
    sb: SandboxCluster,
    method: str,
    path: str,
    token: str | None = None,
    *,
    cert: bool = False,
    body: Any = None,
    content_type: str = "application/json",
    headers: dict[str, str] | None = None,
) -> tuple[int, Any]:
    """One HTTPS request; returns (status, JSON body or text)."""
    hdrs = dict(headers or {})
    if token:
        hdrs["Authorization"] = f"Bearer {token}"
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        hdrs["Content-Type"] = content_type
    timeout = aiohttp.ClientTimeout(total=30)
    async with (
        aiohttp.ClientSession(timeout=timeout) as s,
        s.request(method, sb.url + path, ssl=ssl_ctx(sb, cert), headers=hdrs, data=data) as r,
    ):
        text = await r.text()
        try:
            return r.status, json.loads(text)
        except ValueError:
            return r.status, text


@contextlib.asynccontextmanager
async def watch_stream(
    sb: SandboxCluster, path: str, token: str | None = None
) -> AsyncIterator[tuple[int, asyncio.Queue[dict[str, Any]]]]:
    """Open a watch; yields (HTTP status, queue of decoded events), closed on exit."""
    hdrs = {"Authorization": f"Bearer {token or sb.tokens.admin}"}
    timeout = aiohttp.ClientTimeout(total=None, sock_read=None)
    queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    async with (
        aiohttp.ClientSession(timeout=timeout) as s,
        s.get(sb.url + path, ssl=ssl_ctx(sb), headers=hdrs) as r,
    ):

        async def pump() -> None:
            async for line in r.content:
                if line.strip():
                    queue.put_nowait(json.loads(line))

        task = asyncio.create_task(pump())
        try:
            yield r.status, queue
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, aiohttp.ClientError):
                await task


async def next_event(
    queue: asyncio.Queue[dict[str, Any]], pred: Any = None, within: float = 20.0
) -> dict[str, Any]:
    """The next event (matching `pred`), or fail the test after `within` seconds."""

    async def loop() -> dict[str, Any]:
        while True:
            ev = await queue.get()
            if pred is None or pred(ev):
                return ev

    return await asyncio.wait_for(loop(), within)
