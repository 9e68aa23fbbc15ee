"""Open port-forward WebSockets end when the API goes down or the pod goes away."""

from __future__ import annotations

import asyncio

import aiohttp

from portfwd.sandbox.cluster import SandboxCluster

from .helpers import ssl_ctx


async def _open(
    session: aiohttp.ClientSession, sb: SandboxCluster, pod: str, port: int
) -> aiohttp.ClientWebSocketResponse:
    ws = await session.ws_connect(
        f"{sb.url}/api/v1/namespaces/demo/pods/{pod}/portforward?ports={port}",
        protocols=("v4.channel.k8s.io",),
        headers={"Authorization": f"Bearer {sb.tokens.admin}"},
        ssl=ssl_ctx(sb),
        autoping=True,
    )
    # The two port prefix frames.
    for _ in range(2):
        msg = await asyncio.wait_for(ws.receive(), 20)
        assert msg.type == aiohttp.WSMsgType.BINARY
        assert msg.data[1:] == port.to_bytes(2, "little")
    return ws


async def _echo_once(ws: aiohttp.ClientWebSocketResponse, payload: bytes) -> bytes:
    await ws.send_bytes(b"\x00" + payload)
    got = b""
    while len(got) < len(payload):
        msg = await asyncio.wait_for(ws.receive(), 20)
        assert msg.type == aiohttp.WSMsgType.BINARY, msg
        assert msg.data[0] == 0
        got += msg.data[1:]
    return got


async def _ends(ws: aiohttp.ClientWebSocketResponse) -> None:
    while True:
        msg = await asyncio.wait_for(ws.receive(), 20)
        if msg.type in (
            aiohttp.WSMsgType.CLOSE,
            aiohttp.WSMsgType.CLOSED,
            aiohttp.WSMsgType.CLOSING,
            aiohttp.WSMsgType.ERROR,
        ):
            return


async def test_forward_ends_when_pod_is_deleted(sandbox: SandboxCluster) -> None:
    pod = sorted(sandbox.pod_names("demo", {"app": "echo"}))[0]
    async with aiohttp.ClientSession() as session:
        ws = await _open(session, sandbox, pod, 9000)
        try:
            assert await _echo_once(ws, b"ping") == b"ping"
            await sandbox.delete_pod("demo", pod)
            await _ends(ws)
        finally:
            await ws.close()


async def test_forward_ends_when_api_stops_and_works_after_restart(
    sandbox: SandboxCluster,
) -> None:
    pod = sorted(sandbox.pod_names("demo", {"app": "echo"}))[0]
    async with aiohttp.ClientSession() as session:
        ws = await _open(session, sandbox, pod, 9000)
        try:
            assert await _echo_once(ws, b"before") == b"before"
            await asyncio.wait_for(sandbox.stop_api(), 20)
            await _ends(ws)
        finally:
            await ws.close()
        await sandbox.start_api()
        ws = await _open(session, sandbox, pod, 9000)
        try:
            assert await _echo_once(ws, b"after") == b"after"
        finally:
            await ws.close()
