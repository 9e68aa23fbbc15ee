"""Each wire protocol through the sandbox over real sockets: bytes intact, one SPDY session
for many connections, half-close, the fallback chain, RBAC per path, refused dials."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import pytest
import pytest_asyncio

from portfwd.engine.manager import Manager
from portfwd.engine.model import ForwardSpec, ForwardState, LogLevel
from portfwd.sandbox.cluster import SandboxCluster
from portfwd.tunnel.pool import TunnelPool
from tests.support.echo import echo_once

pytestmark = pytest.mark.timeout(180)

ALL = ["websocket", "spdy", "v4"]
SPDY = ["websocket", "spdy"]
# The v4 end-of-input limit these tests run with (default 30 s): long enough that a loaded
# sandbox's pauses do not end a connection early, short enough for the suite.
V4_LIMIT = 5.0
V4_PATIENT = 30.0  # the default: the 500-client test runs at it


@dataclass
class Forwarded:
    manager: Manager
    fid: str

    @property
    def port(self) -> int:
        return self.manager.get(self.fid).local_port

    def lines(self, level: LogLevel | None = None) -> list[str]:
        return [e.message for e in self.manager.logs(self.fid) if level is None or e.level is level]


@pytest_asyncio.fixture
async def forward(
    sandbox: SandboxCluster,
) -> AsyncIterator[Callable[..., Any]]:
    """forward(protocol, **spec) -> Forwarded, on one Manager per test, shut down after."""
    managers: list[Manager] = []

    async def make(
        protocol: str = "auto",
        *,
        target: str = "svc/echo",
        remote_port: int | str = 80,
        environ: dict[str, str] | None = None,
        v4_eof_idle_limit: float = V4_LIMIT,
        **spec: Any,
    ) -> Forwarded:
        manager = Manager(
            kubeconfig=str(sandbox.kubeconfig_path),
            tunnels=TunnelPool(environ=environ or {}),
            v4_eof_idle_limit=v4_eof_idle_limit,
        )
        managers.append(manager)
        fid = await manager.add(
            ForwardSpec(target=target, remote_port=remote_port, protocol=protocol, **spec)
        )
        return Forwarded(manager, fid)

    try:
        yield make
    finally:
        for manager in managers:
            await asyncio.wait_for(manager.shutdown(), 30)


def _block(i: int) -> bytes:
    return hashlib.sha256(i.to_bytes(8, "big")).digest() * 2048  # 64 KiB, different each time


async def _stream_both_ways(port: int, size: int) -> tuple[str, str, int]:
    """Send `size` bytes while reading the echo back: (sent sha256, received sha256, bytes)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    sent, got = hashlib.sha256(), hashlib.sha256()
    received = 0

    async def send() -> None:
        for i in range(size // 65536):
            block = _block(i)
            sent.update(block)
            writer.write(block)
            await writer.drain()

    sender = asyncio.create_task(send())
    try:
        while received < size:
            chunk = await reader.read(1 << 20)
            if not chunk:
                break
            got.update(chunk)
            received += len(chunk)
        await sender
    finally:
        sender.cancel()
        writer.close()
    return sent.hexdigest(), got.hexdigest(), received


@pytest.mark.parametrize("protocol", ALL)
async def test_200_mb_each_way_arrive_intact(forward: Callable[..., Any], protocol: str) -> None:
    fwd = await forward(protocol)
    size = 200 * 1024 * 1024
    sent, got, received = await asyncio.wait_for(_stream_both_ways(fwd.port, size), 150)
    assert received == size and got == sent
    name = {"websocket": "SPDY over WebSocket", "spdy": "SPDY", "v4": "v4.channel.k8s.io"}
    assert any(line.startswith(f"tunnel: {name[protocol]}") for line in fwd.lines())


@pytest.mark.parametrize("protocol", SPDY)
async def test_a_50_mb_transfer_never_waits_for_window_updates(
    forward: Callable[..., Any], protocol: str
) -> None:
    """The kubelet (spdystream, and the sandbox like it) never sends WINDOW_UPDATE: a client
    that waited for credit would stall after 64 KiB of the first window."""
    fwd = await forward(protocol)
    size = 50 * 1024 * 1024
    sent, got, received = await asyncio.wait_for(_stream_both_ways(fwd.port, size), 60)
    assert received == size and got == sent


@pytest.mark.parametrize("protocol", SPDY)
async def test_1000_concurrent_connections_share_one_session(
    sandbox: SandboxCluster, forward: Callable[..., Any], protocol: str
) -> None:
    fwd = await forward(protocol)
    sessions_before = sandbox.spdy_sessions
    payloads = [os.urandom(1000 + i) for i in range(1000)]
    results = await asyncio.gather(*(echo_once(fwd.port, p, 60) for p in payloads))
    assert results == payloads
    assert sandbox.spdy_sessions == sessions_before  # all on the session opened at start
    assert fwd.manager.tunnels.sessions_opened == 1
    assert fwd.manager.get(fwd.fid).stats.errors == 0


async def _send_half_close_read(port: int, payload: bytes) -> bytes:
    async with asyncio.timeout(120):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:

            async def send() -> None:
                writer.write(payload)
                await writer.drain()
                writer.write_eof()

            sender = asyncio.create_task(send())
            got = bytearray()
            while chunk := await reader.read(1 << 16):
                got += chunk
            await sender
            return bytes(got)
        finally:
            writer.close()


@pytest.mark.parametrize("protocol", ALL)
async def test_500_clients_that_half_close_get_their_whole_reply(
    forward: Callable[..., Any], protocol: str
) -> None:
    # v4 at its default limit (30 s): 500 MB each way through the Python sandbox starves a
    # connection for seconds at a time, and no data may be cut short by a shorter guess;
    # nor by the release of waiting connections past 16 whose pod has been quiet for 2 s
    # (a memory guard, tests/tunnel/test_pump.py): on a loaded machine the sandbox's echo
    # is quiet that long while it is still to come.
    fwd = await forward(protocol, v4_eof_idle_limit=V4_PATIENT)
    fwd.manager._forwards[fwd.fid].connections.lingering.quiet = V4_PATIENT
    payloads = [os.urandom(1_000_000) for _ in range(500)]
    results = await asyncio.gather(
        *(_send_half_close_read(fwd.port, p) for p in payloads), return_exceptions=True
    )
    failed = [repr(r) for r, p in zip(results, payloads, strict=True) if r != p]
    assert failed == [], (failed[:3], fwd.lines(LogLevel.WARNING)[:5])
    said = [w for w in fwd.lines(LogLevel.WARNING) if "v4.channel.k8s.io cannot tell" in w]
    if protocol == "v4":
        # v4 cannot tell the echo backend that the client is done, so it never closes: each
        # connection ended by the limit, and the forward said why once.
        assert len(said) == 1
        assert said[0].startswith("a client finished sending, and v4.channel.k8s.io cannot")
        assert f"quiet for {V4_PATIENT:g} s" in said[0]
    else:
        assert said == []  # the backend got the FIN and closed: nothing was guessed


@contextlib.asynccontextmanager
async def slow_backend(delay: float) -> AsyncIterator[int]:
    """Reads one line, answers `RESPONSE:<line>` `delay` s later, then closes."""

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        line = await reader.readline()
        await asyncio.sleep(delay)
        writer.write(b"RESPONSE:" + line)
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        await server.wait_closed()


@pytest.mark.parametrize("protocol", ALL)
async def test_a_reply_3_s_after_the_half_close_arrives(protocol: str) -> None:
    async with slow_backend(3.0) as backend_port:
        topology = {
            "namespaces": [
                {
                    "name": "slow",
                    "pods": [
                        {
                            "name": "thinker",
                            "ports": [
                                {"containerPort": 7000, "backend": f"127.0.0.1:{backend_port}"}
                            ],
                        }
                    ],
                }
            ]
        }
        async with SandboxCluster(topology) as sandbox:
            manager = Manager(kubeconfig=str(sandbox.kubeconfig_path))  # default v4 limit
            try:
                fid = await manager.add(
                    ForwardSpec(
                        target="pod/thinker",
                        remote_port=7000,
                        namespace="slow",
                        protocol=protocol,
                    )
                )
                snap = manager.get(fid)
                assert snap.state is ForwardState.ACTIVE, snap.reason
                reply = await _send_half_close_read(snap.local_port, b"hello\n")
                assert reply == b"RESPONSE:hello\n"
                warnings = [e.message for e in manager.logs(fid) if e.level is LogLevel.WARNING]
                if protocol == "v4":  # the forward says once that v4 cannot pass the end on
                    assert len(warnings) == 1 and "cannot tell the pod" in warnings[0]
                else:
                    assert warnings == []
            finally:
                await asyncio.wait_for(manager.shutdown(), 30)


@contextlib.asynccontextmanager
async def replies_at_eof_backend() -> AsyncIterator[int]:
    """Reads until the client's end, then answers `GOT <n>` (a reply that needs the end)."""

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError):
            data = await reader.read()
            writer.write(b"GOT %d" % len(data))
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        await server.wait_closed()


async def test_v4_half_closing_clients_end_within_the_limit_and_are_told_once() -> None:
    """v4 cannot pass the client's end: a reply that waits for it never comes. No client
    hangs past the limit, and the forward says why once, not once per connection."""
    async with replies_at_eof_backend() as backend_port:
        topology = {
            "namespaces": [
                {
                    "name": "eof",
                    "pods": [
                        {
                            "name": "needs-eof",
                            "ports": [
                                {"containerPort": 7000, "backend": f"127.0.0.1:{backend_port}"}
                            ],
                        }
                    ],
                }
            ]
        }
        async with SandboxCluster(topology) as sandbox:
            manager = Manager(kubeconfig=str(sandbox.kubeconfig_path), v4_eof_idle_limit=1.0)
            try:
                spec = ForwardSpec(
                    target="pod/needs-eof", remote_port=7000, namespace="eof", protocol="v4"
                )
                snap = manager.get(await manager.add(spec))
                assert snap.state is ForwardState.ACTIVE, snap.reason
                replies = await asyncio.gather(
                    *(_send_half_close_read(snap.local_port, b"request") for _ in range(50))
                )
                assert replies == [b""] * 50  # each ended (EOF), none hung
                warnings = [e.message for e in manager.logs(snap.id) if e.level is LogLevel.WARNING]
                assert len(warnings) == 1, warnings
                assert "v4.channel.k8s.io cannot tell the pod" in warnings[0]
            finally:
                await asyncio.wait_for(manager.shutdown(), 30)


# --- negotiation ---------------------------------------------------------------------------


async def test_auto_is_spdy_over_websocket_first(
    sandbox: SandboxCluster, forward: Callable[..., Any]
) -> None:
    fwd = await forward()
    assert "tunnel: SPDY over WebSocket" in fwd.lines()
    assert sandbox.portforward_attempts == ["websocket-spdy"]
    assert await echo_once(fwd.port, b"ping", 60) == b"ping"


async def test_a_server_without_the_websocket_tunnel_falls_back_to_spdy(
    sandbox: SandboxCluster, forward: Callable[..., Any]
) -> None:
    sandbox.refuse_websocket_spdy = True  # an API server before KEP-4006
    fwd = await forward()
    assert fwd.manager.get(fwd.fid).state is ForwardState.ACTIVE
    assert "tunnel: SPDY" in fwd.lines()
    assert sandbox.portforward_attempts == [
        "websocket-spdy",
        "websocket-spdy",
        "spdy",
    ]  # refusal replayed
    assert await echo_once(fwd.port, b"ping", 60) == b"ping"


async def test_a_proxy_that_drops_spdy_falls_back_to_v4(
    sandbox: SandboxCluster, forward: Callable[..., Any]
) -> None:
    sandbox.refuse_websocket_spdy = True
    sandbox.refuse_spdy = True
    fwd = await forward()
    assert fwd.manager.get(fwd.fid).state is ForwardState.ACTIVE
    assert "tunnel: v4.channel.k8s.io (one WebSocket per connection)" in fwd.lines()
    assert sandbox.portforward_attempts[:4] == ["websocket-spdy", "websocket-spdy", "spdy", "v4"]
    assert await echo_once(fwd.port, b"ping", 60) == b"ping"


DIAL_FAILED = "error dialing backend: dial tcp 127.0.0.1:10350: connect: connection refused"


async def test_a_websocket_upgrade_failing_with_500_falls_back_to_spdy(
    sandbox: SandboxCluster, forward: Callable[..., Any]
) -> None:
    """kubectl falls back on any failed WebSocket upgrade, not only on 400/403/..."""
    sandbox.fail_websocket_upgrades = DIAL_FAILED
    fwd = await forward()
    snap = fwd.manager.get(fwd.fid)
    assert snap.state is ForwardState.ACTIVE, snap.reason
    assert "tunnel: SPDY" in fwd.lines()
    assert sandbox.portforward_attempts == [
        "websocket-spdy",
        "websocket-spdy",
        "spdy",
    ]  # refusal replayed
    assert await echo_once(fwd.port, b"ping", 60) == b"ping"


@pytest.mark.parametrize("protocol", ["websocket", "v4"])
async def test_a_refused_websocket_upgrade_shows_the_servers_words(
    sandbox: SandboxCluster, forward: Callable[..., Any], protocol: str
) -> None:
    sandbox.fail_websocket_upgrades = DIAL_FAILED
    fwd = await forward(protocol)
    snap = fwd.manager.get(fwd.fid)
    assert snap.state is not ForwardState.ACTIVE
    assert f": {DIAL_FAILED}" in snap.reason, snap.reason


async def test_kubectls_websocket_switch_means_plain_spdy(
    sandbox: SandboxCluster, forward: Callable[..., Any]
) -> None:
    fwd = await forward(environ={"KUBECTL_PORT_FORWARD_WEBSOCKETS": "false"})
    assert "tunnel: SPDY" in fwd.lines()
    assert sandbox.portforward_attempts == ["spdy"]  # no WebSocket was even tried


async def test_a_chosen_protocol_is_used_alone(
    sandbox: SandboxCluster, forward: Callable[..., Any]
) -> None:
    sandbox.refuse_spdy = True
    fwd = await forward("spdy")
    snap = fwd.manager.get(fwd.fid)
    assert snap.state is ForwardState.ERROR
    assert "unable to upgrade: missing upgrade headers in request" in snap.reason
    assert sandbox.portforward_attempts == ["spdy"]


# --- RBAC, as a 1.36 API server checks it per path -------------------------------------------


async def test_create_only_works_through_the_spdy_fallback(
    sandbox: SandboxCluster, forward: Callable[..., Any]
) -> None:
    """The usual port-forward Role grants only `create`: the WebSocket GET is refused (it
    needs `get`), plain SPDY (a POST) works, as for kubectl."""
    fwd = await forward(context="sandbox-pf-create")
    snap = fwd.manager.get(fwd.fid)
    assert snap.state is ForwardState.ACTIVE, snap.reason
    assert "tunnel: SPDY" in fwd.lines()
    assert await echo_once(fwd.port, b"ping", 60) == b"ping"
    websocket_only = await forward("websocket", context="sandbox-pf-create")
    snap = websocket_only.manager.get(websocket_only.fid)
    assert snap.state is ForwardState.ERROR
    assert 'user "pf-create" may not get pods/portforward in namespace "demo"' in snap.reason


async def test_get_only_is_refused_naming_what_each_path_needs(
    forward: Callable[..., Any],
) -> None:
    fwd = await forward(context="sandbox-pf-get")
    snap = fwd.manager.get(fwd.fid)
    assert snap.state is ForwardState.ERROR and snap.bound == ()
    assert snap.reason.startswith('user "pf-get" may not port-forward to pod echo-')
    assert (
        '(403 Forbidden, context "sandbox-pf-get"): refused over SPDY over WebSocket (no '
        "reason given), SPDY (cannot create) and v4.channel.k8s.io (no reason given); "
        'WebSocket upgrades need "get" and "create" on pods/portforward, SPDY needs "create"'
    ) in snap.reason


async def test_neither_verb_is_refused_naming_both(forward: Callable[..., Any]) -> None:
    fwd = await forward(context="sandbox-viewer")
    snap = fwd.manager.get(fwd.fid)
    assert snap.state is ForwardState.ERROR
    assert "SPDY over WebSocket (cannot get), SPDY (cannot create)" in snap.reason


# --- the kubelet side under many streams -----------------------------------------------------


@pytest.mark.parametrize("protocol", SPDY)
async def test_a_refused_dial_fails_only_its_connection_and_the_session_stays(
    sandbox: SandboxCluster, forward: Callable[..., Any], protocol: str
) -> None:
    fwd = await forward(protocol)
    pod = fwd.manager.get(fwd.fid).pod
    await sandbox.set_backend_refusing("demo", pod, 9000)
    refused = await asyncio.gather(*(_echo_or_eof(fwd.port) for _ in range(100)))
    assert refused == [b""] * 100  # each one closed, with the kubelet's words in the log
    warnings = fwd.lines(LogLevel.WARNING)
    assert len(warnings) == 100
    assert f"error forwarding port 9000 to pod {pod}, uid : failed to connect" in warnings[0]
    await sandbox.set_backend_refusing("demo", pod, 9000, refusing=False)
    assert await echo_once(fwd.port, b"back", 60) == b"back"
    assert fwd.manager.get(fwd.fid).state is ForwardState.ACTIVE
    assert fwd.manager.tunnels.sessions_opened == 1  # the same session throughout


@pytest.mark.parametrize("protocol", SPDY)
async def test_the_kubelets_reason_survives_crio_closing_the_data_stream_first(
    sandbox: SandboxCluster, forward: Callable[..., Any], protocol: str
) -> None:
    sandbox.crio_error_order = True
    fwd = await forward(protocol)
    pod = fwd.manager.get(fwd.fid).pod
    await sandbox.set_backend_refusing("demo", pod, 9000)
    refused = await asyncio.gather(*(_echo_or_eof(fwd.port) for _ in range(20)))
    assert refused == [b""] * 20
    warnings = fwd.lines(LogLevel.WARNING)
    said = [w for w in warnings if "connect: connection refused" in w]
    assert len(said) == 20, warnings


async def _echo_or_eof(port: int) -> bytes:
    async with asyncio.timeout(30):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            writer.write(b"ping")
            await writer.drain()
            return await reader.read()
        finally:
            writer.close()
