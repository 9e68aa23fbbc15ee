"""A minimal kubelet-side port-forward endpoint and client, for tunnel and engine unit tests.

The real sandbox (H2/H3) is the integration partner; this fake only speaks enough of
docs/protocols.md section 2 to drive our side: prefix frames, channel 0 data, error-channel text
followed by a dropped connection, and "backend closes" (normal end of stream).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web

from portfwd.constants import PORTFORWARD_V4_BINARY
from portfwd.kube.upgrade import UpgradeRefused


async def _echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()
    except ConnectionError:
        pass
    finally:
        writer.close()


@dataclass
class FakeKubelet:
    """Serves /api/v1/namespaces/{ns}/pods/{pod}/portforward; dials `backends[port]`."""

    backends: dict[int, tuple[str, int]] = field(default_factory=dict)
    refusing: set[int] = field(default_factory=set)
    missing_pods: set[str] = field(default_factory=set)
    close_code: int = 1000  # what the server's close frame says at the end of a stream
    url: str = ""
    opened: int = 0
    open_now: int = 0
    _runner: web.AppRunner | None = None

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/api/v1/namespaces/{ns}/pods/{pod}/portforward", self._handle)
        self._runner = web.AppRunner(app, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        server = site._server
        assert isinstance(server, asyncio.Server)
        port = server.sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        pod = request.match_info["pod"]
        if pod in self.missing_pods:
            return web.json_response(
                {"kind": "Status", "reason": "NotFound", "message": f'pods "{pod}" not found'},
                status=404,
            )
        port = int(request.query["ports"])
        ws = web.WebSocketResponse(protocols=(PORTFORWARD_V4_BINARY,), max_msg_size=0)
        await ws.prepare(request)
        self.opened += 1
        self.open_now += 1
        try:
            prefix = port.to_bytes(2, "little")
            await ws.send_bytes(b"\x00" + prefix)
            await ws.send_bytes(b"\x01" + prefix)
            if port in self.refusing or port not in self.backends:
                text = (
                    f"error forwarding port {port} to pod {pod}, uid : failed to connect to"
                    f' localhost:{port} inside namespace of pod "{pod}": dial tcp'
                    f" 127.0.0.1:{port}: connect: connection refused"
                )
                await ws.send_bytes(b"\x01" + text.encode())
                assert request.transport is not None
                request.transport.abort()  # like the real server: no close frame
                return ws
            reader, writer = await asyncio.open_connection(*self.backends[port])
            to_pod = asyncio.create_task(self._to_pod(ws, writer))
            try:
                while data := await reader.read(65536):
                    await ws.send_bytes(b"\x00" + data)
            finally:
                to_pod.cancel()
                with contextlib.suppress(BaseException):
                    await to_pod
                writer.close()
            await ws.close(code=self.close_code)
            return ws
        finally:
            self.open_now -= 1

    async def _to_pod(self, ws: web.WebSocketResponse, writer: asyncio.StreamWriter) -> None:
        async for msg in ws:
            if msg.type is aiohttp.WSMsgType.BINARY and msg.data[:1] == b"\x00":
                writer.write(msg.data[1:])
                await writer.drain()
        writer.close()


class FakeClient:
    """The part of KubeClient the tunnel uses."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
        self.namespace = "demo"
        self.context = "fake"

    async def open_portforward(
        self, ns: str, pod: str, ports: Sequence[int]
    ) -> aiohttp.ClientWebSocketResponse:
        from portfwd.errors import PortfwdError

        query = [("ports", str(p)) for p in ports]
        try:
            return await self.session.ws_connect(
                f"{self.url}/api/v1/namespaces/{ns}/pods/{pod}/portforward",
                params=query,
                protocols=(PORTFORWARD_V4_BINARY,),
                max_msg_size=0,
            )
        except aiohttp.WSServerHandshakeError as exc:
            raise PortfwdError(f"port-forward to pod {pod} refused: HTTP {exc.status}") from exc

    async def open_spdy_websocket(self, ns: str, pod: str) -> aiohttp.ClientWebSocketResponse:
        raise UpgradeRefused("the fake kubelet speaks v4.channel.k8s.io only", status=403)

    async def open_spdy_upgrade(self, ns: str, pod: str) -> Any:
        raise UpgradeRefused("the fake kubelet speaks v4.channel.k8s.io only", status=400)

    async def close(self) -> None:
        await self.session.close()


@contextlib.asynccontextmanager
async def echo_server() -> AsyncIterator[tuple[str, int]]:
    server = await asyncio.start_server(_echo, "127.0.0.1", 0)
    try:
        yield "127.0.0.1", server.sockets[0].getsockname()[1]
    finally:
        server.close()
        with contextlib.suppress(Exception):
            async with asyncio.timeout(2):
                await server.wait_closed()
