"""`kubectl port-forward` against the sandbox: the SPDY port-forward, tunnelled and plain.

kubectl 1.31+ tunnels SPDY through a WebSocket (KEP-4006) unless
KUBECTL_PORT_FORWARD_WEBSOCKETS=false, which makes it speak plain SPDY/3.1: both are run.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest

from portfwd.sandbox.backends import bytes_body
from portfwd.sandbox.cluster import SandboxCluster

from .helpers import kubectl, kubectl_base

pytestmark = pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl not installed")

FORWARDING_RE = re.compile(r"^Forwarding from 127\.0\.0\.1:(\d+) -> (\d+)$")
TIMEOUT = 30.0
MODES = [pytest.param(True, id="websocket-tunnel"), pytest.param(False, id="plain-spdy")]


@dataclass
class PortForward:
    ports: list[int]
    stderr: list[str] = field(default_factory=list)
    proc: asyncio.subprocess.Process | None = None

    def log(self) -> str:
        return "".join(self.stderr)


@contextlib.asynccontextmanager
async def kubectl_port_forward(
    sb: SandboxCluster, target: str, *ports: str, websockets: bool
) -> AsyncIterator[PortForward]:
    """Run `kubectl port-forward` until its "Forwarding from" lines; killed on the way out."""
    env = {**os.environ, "KUBECTL_PORT_FORWARD_WEBSOCKETS": "true" if websockets else "false"}
    proc = await asyncio.create_subprocess_exec(
        *kubectl_base(sb),
        "port-forward",
        "--address",
        "127.0.0.1",
        "-v=4",
        target,
        *ports,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )
    assert proc.stdout is not None and proc.stderr is not None
    forward = PortForward([], proc=proc)

    async def drain(stream: asyncio.StreamReader, sink: list[str] | None) -> None:
        while line := await stream.readline():
            if sink is not None:
                sink.append(line.decode(errors="replace"))

    err_task = asyncio.create_task(drain(proc.stderr, forward.stderr))
    out_task: asyncio.Task[None] | None = None
    try:

        async def wait_ready() -> None:
            assert proc.stdout is not None
            while len(forward.ports) < len(ports):
                line = (await proc.stdout.readline()).decode()
                assert line, f"kubectl port-forward exited early: {forward.log()}"
                match = FORWARDING_RE.match(line.strip())
                if match:
                    forward.ports.append(int(match.group(1)))

        await asyncio.wait_for(wait_ready(), TIMEOUT)
        out_task = asyncio.create_task(drain(proc.stdout, None))
        yield forward
    finally:
        if proc.returncode is None:
            proc.kill()
        await asyncio.wait_for(proc.wait(), TIMEOUT)
        for task in (err_task, out_task):
            if task is not None:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(task, TIMEOUT)


def assert_transport(forward: PortForward, websockets: bool) -> None:
    """kubectl -v=4 names the dialer it used: the tunnel must not have fallen back."""
    log = forward.log()
    if websockets:
        assert "negotiated protocol: portforward.k8s.io" in log, log
        assert "fallback" not in log.lower(), log
    else:
        assert "tunneling_dialer" not in log, log


async def echo_roundtrip(port: int, payload: bytes) -> bytes:
    """Send everything while reading the echo concurrently; returns what came back."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:

        async def send() -> None:
            for i in range(0, len(payload), 64 * 1024):
                writer.write(payload[i : i + 64 * 1024])
                await writer.drain()

        sender = asyncio.create_task(send())
        received = await asyncio.wait_for(reader.readexactly(len(payload)), TIMEOUT)
        await sender
        return received
    finally:
        writer.close()


async def http_get(port: int, path: str) -> tuple[str, bytes]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(f"GET {path} HTTP/1.0\r\nHost: web\r\n\r\n".encode())
        await writer.drain()
        raw = await asyncio.wait_for(reader.read(), TIMEOUT)  # HTTP/1.0: the body ends at EOF
    finally:
        writer.close()
    head, _, body = raw.partition(b"\r\n\r\n")
    return head.decode(), body


@pytest.mark.parametrize("websockets", MODES)
async def test_service_echo_one_megabyte(sandbox: SandboxCluster, websockets: bool) -> None:
    payload = os.urandom(1024 * 1024)
    async with kubectl_port_forward(sandbox, "svc/echo", ":80", websockets=websockets) as fwd:
        assert await echo_roundtrip(fwd.ports[0], payload) == payload
        # A second connection over the same SPDY session.
        assert await echo_roundtrip(fwd.ports[0], b"again") == b"again"
    assert_transport(fwd, websockets)
    assert sandbox.portforward_requests == 1  # one upgrade, counted in both forms


@pytest.mark.parametrize("websockets", MODES)
async def test_concurrent_connections(sandbox: SandboxCluster, websockets: bool) -> None:
    payloads = [os.urandom(256 * 1024 + i) for i in range(8)]
    async with kubectl_port_forward(sandbox, "svc/echo", ":80", websockets=websockets) as fwd:
        results = await asyncio.gather(*(echo_roundtrip(fwd.ports[0], p) for p in payloads))
    assert results == payloads


@pytest.mark.parametrize("websockets", MODES)
async def test_web_bytes(sandbox: SandboxCluster, websockets: bool) -> None:
    size = 3 * 1024 * 1024 + 7
    async with kubectl_port_forward(sandbox, "svc/web", ":80", websockets=websockets) as fwd:
        head, body = await http_get(fwd.ports[0], f"/bytes/{size}")
        _small_head, small_body = await http_get(fwd.ports[0], "/")
    assert head.startswith("HTTP/1.") and " 200 " in head.splitlines()[0]
    assert f"content-length: {size}" in head.lower()
    assert body == bytes_body(size)
    assert small_body.decode().startswith("hello from web-")


@pytest.mark.parametrize("websockets", MODES)
async def test_pod_with_two_ports(sandbox: SandboxCluster, websockets: bool) -> None:
    pod = sandbox.pod_names("demo", {"app": "echo"})[0]
    async with kubectl_port_forward(
        sandbox, f"pod/{pod}", ":9000", ":6060", websockets=websockets
    ) as fwd:
        echo_port, http_port = fwd.ports
        payload = os.urandom(100_000)
        assert await echo_roundtrip(echo_port, payload) == payload
        _head, body = await http_get(http_port, "/")
    assert body.decode() == f"hello from {pod}\n"


@pytest.mark.parametrize("websockets", MODES)
async def test_half_close_reaches_the_pod(sandbox: SandboxCluster, websockets: bool) -> None:
    """The client shuts its sending side: the echo pod sees EOF, answers everything, closes."""
    payload = os.urandom(300_000)
    async with kubectl_port_forward(sandbox, "svc/echo", ":80", websockets=websockets) as fwd:
        reader, writer = await asyncio.open_connection("127.0.0.1", fwd.ports[0])
        try:
            writer.write(payload)
            await writer.drain()
            sock = writer.get_extra_info("socket")
            sock.shutdown(socket.SHUT_WR)
            received = await asyncio.wait_for(reader.read(), TIMEOUT)  # until EOF
        finally:
            writer.close()
    assert received == payload


@pytest.mark.parametrize("websockets", MODES)
async def test_refused_port_shows_kubelet_error(sandbox: SandboxCluster, websockets: bool) -> None:
    pod = sandbox.pod_names("demo", {"app": "echo"})[0]
    await sandbox.set_backend_refusing("demo", pod, 9000)
    async with kubectl_port_forward(sandbox, f"pod/{pod}", ":9000", websockets=websockets) as fwd:
        reader, writer = await asyncio.open_connection("127.0.0.1", fwd.ports[0])
        try:
            assert await asyncio.wait_for(reader.read(), TIMEOUT) == b""
        finally:
            writer.close()
        assert fwd.proc is not None
        # kubectl reports the error stream's text, then drops the whole session and exits.
        await asyncio.wait_for(fwd.proc.wait(), TIMEOUT)
    log = fwd.log()
    assert f"error forwarding port 9000 to pod {pod}, uid " in log, log
    # klog quotes the message, escaping its inner quotes.
    assert "failed to connect to localhost:9000 inside namespace of pod" in log, log
    assert "dial tcp 127.0.0.1:9000: connect: connection refused" in log, log
    assert "error: lost connection to pod" in log, log


@pytest.mark.parametrize("websockets", MODES)
async def test_forbidden_user_gets_the_api_servers_words(
    sandbox: SandboxCluster, websockets: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KUBECTL_PORT_FORWARD_WEBSOCKETS", "true" if websockets else "false")
    rc, _out, err = await kubectl(
        sandbox, "port-forward", "svc/echo", ":80", context="sandbox-viewer"
    )
    assert rc == 1
    # The tunnel's refusal sends kubectl to plain SPDY (a POST: verb create), refused as well.
    assert re.search(
        r'^error: error upgrading connection: pods "echo-[a-z0-9-]+" is forbidden: '
        r'User "viewer" cannot create resource "pods/portforward" in API group "" '
        r'in the namespace "demo"$',
        err,
        re.MULTILINE,
    ), err


@pytest.mark.parametrize("websockets", MODES)
async def test_deleted_pod_ends_the_forward(sandbox: SandboxCluster, websockets: bool) -> None:
    """Open connections end when the pod goes; the next one gets the kubelet's error."""
    pod = sandbox.pod_names("demo", {"app": "echo"})[0]
    async with kubectl_port_forward(sandbox, f"pod/{pod}", ":9000", websockets=websockets) as fwd:
        reader, writer = await asyncio.open_connection("127.0.0.1", fwd.ports[0])
        try:
            writer.write(b"before")
            assert await asyncio.wait_for(reader.readexactly(6), TIMEOUT) == b"before"
            await sandbox.delete_pod("demo", pod)
            assert await asyncio.wait_for(reader.read(), TIMEOUT) == b""
        finally:
            writer.close()
        reader, writer = await asyncio.open_connection("127.0.0.1", fwd.ports[0])
        try:
            assert await asyncio.wait_for(reader.read(), TIMEOUT) == b""
        finally:
            writer.close()
        assert fwd.proc is not None
        await asyncio.wait_for(fwd.proc.wait(), TIMEOUT)
    log = fwd.log()
    assert f"error forwarding port 9000 to pod {pod}, uid " in log, log
    assert "error: lost connection to pod" in log, log
