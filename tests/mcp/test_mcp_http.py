"""`portfwd mcp --http 127.0.0.1:0`: streamable HTTP on loopback, the bearer token required."""

from __future__ import annotations

import asyncio
import contextlib
import re
import signal
from pathlib import Path

import pytest

from portfwd.sandbox.cluster import SandboxCluster
from tests.support.cli import PORTFWD, portfwd_async, private_env

pytest.importorskip("mcp")

from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client

pytestmark = pytest.mark.timeout(150)

TOKEN = "a-token-long-enough-0123456789"


async def test_http_needs_the_token_and_loopback(tmp_path: Path) -> None:
    env = private_env(tmp_path)
    no_token = await portfwd_async("mcp", "--http", "127.0.0.1:0", env=env)
    assert no_token.code == 2, no_token
    assert "PORTFWD_MCP_TOKEN" in no_token.one_error()
    wide = await portfwd_async(
        "mcp", "--http", "0.0.0.0:0", env={**env, "PORTFWD_MCP_TOKEN": TOKEN}
    )
    assert wide.code == 2, wide
    assert "expected a loopback HOST:PORT" in wide.one_error()


async def test_a_client_with_the_token_is_served_one_without_is_refused(
    sandbox: SandboxCluster, tmp_path: Path
) -> None:
    env = private_env(tmp_path, PORTFWD_MCP_TOKEN=TOKEN)
    proc = await asyncio.create_subprocess_exec(
        *PORTFWD, "mcp", "--kubeconfig", str(sandbox.kubeconfig_path), "-n", "demo",
        "--http", "127.0.0.1:0",
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE, env=env,
    )  # fmt: skip
    try:
        assert proc.stderr is not None
        said: list[str] = []
        line = ""
        async with asyncio.timeout(90):  # importing the SDK is slow on a loaded machine
            while not (found := re.search(r"serving on (http://127\.0\.0\.1:\d+/mcp)", line)):
                line = (await proc.stderr.readline()).decode()
                assert line, f"it ended first: {said}"
                said.append(line)
        url = found.group(1)

        async with create_mcp_http_client() as anonymous:
            refused = await anonymous.post(url, json={"jsonrpc": "2.0", "id": 1, "method": "ping"})
        assert refused.status_code == 401

        headers = {"Authorization": f"Bearer {TOKEN}"}
        async with (
            create_mcp_http_client(headers=headers) as http,
            streamable_http_client(url, http_client=http) as (read, write),
            ClientSession(read, write, read_timeout_seconds=60) as session,
        ):
            await session.initialize()
            result = await session.call_tool("list_forwards", {})
            assert not result.is_error, result
            assert result.structured_content == {"forwards": []}
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGINT)
        try:
            async with asyncio.timeout(20):
                await proc.wait()
        finally:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()
