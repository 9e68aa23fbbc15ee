"""Accepting: the listener's `prepare` runs the moment a connection is accepted, is handed to
its owner once, and is given up (aborted) when the connection never opens or is refused; an
accepted connection has its peer's address and Nagle's delay off."""

from __future__ import annotations

import asyncio
import socket
from typing import Any, cast

import pytest

from portfwd.engine.connections import Connections, Prepared
from portfwd.engine.model import ForwardSpec, LogKind, LogLevel
from portfwd.engine.routing import Router
from portfwd.kube.resolve import Resolution
from portfwd.tunnel.addresses import BindAddress
from portfwd.tunnel.listener import LocalConnection, bind
from portfwd.tunnel.pool import PodTunnel
from portfwd.tunnel.protocol import TunnelStream
from tests.support.wait import eventually

LOOPBACK = [BindAddress("127.0.0.1", True)]


class Made:
    """What a test's `prepare` returns: remembers whether it was given up."""

    def __init__(self) -> None:
        self.aborted = 0

    def abort(self) -> None:
        self.aborted += 1


async def test_prepare_runs_at_accept_and_its_result_is_handed_over_once() -> None:
    made: list[Made] = []
    opened: list[tuple[LocalConnection, object, object]] = []

    def prepare() -> Made:
        made.append(Made())
        return made[-1]

    def on_connection(local: LocalConnection) -> None:
        opened.append((local, local.take_prepared(), local.take_prepared()))

    listeners = await bind(LOOPBACK, 0, on_connection, prepare=prepare)
    try:
        client = socket.create_connection(("127.0.0.1", listeners.port))
        await eventually(lambda: bool(opened))
        (local, first, second) = opened[0]
        assert first is made[0] and second is None
        assert made[0].aborted == 0  # handed over: the owner's to keep or give up
        assert local.peer == f"127.0.0.1:{client.getsockname()[1]}"
        local.abort()
        client.close()
    finally:
        await listeners.close()


@pytest.mark.parametrize("loop_name", ["asyncio", "uvloop"])
def test_an_accepted_connection_sends_small_writes_at_once(loop_name: str) -> None:
    """TCP_NODELAY, on either loop (asyncio sets it only for sockets made with proto
    IPPROTO_TCP, which an accepted one is not)."""

    async def main() -> int:
        opened: list[LocalConnection] = []
        listeners = await bind(LOOPBACK, 0, opened.append)
        try:
            client = socket.create_connection(("127.0.0.1", listeners.port))
            await eventually(lambda: bool(opened))
            transport = opened[0].transport
            assert transport is not None
            sock = transport.get_extra_info("socket")
            nodelay = int(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
            opened[0].abort()
            client.close()
            return nodelay
        finally:
            await listeners.close()

    factory = asyncio.new_event_loop
    if loop_name == "uvloop":
        factory = pytest.importorskip("uvloop").new_event_loop
    with asyncio.Runner(loop_factory=factory) as runner:
        assert runner.run(main()) != 0


async def test_a_connection_that_never_opens_gives_up_what_was_prepared(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    made: list[Made] = []

    def prepare() -> Made:
        made.append(Made())
        return made[-1]

    async def refused(*args: Any, **kwargs: Any) -> Any:
        raise OSError("the transport could not be set up")

    loop = asyncio.get_running_loop()
    monkeypatch.setattr(loop, "connect_accepted_socket", refused)
    opened: list[LocalConnection] = []
    listeners = await bind(LOOPBACK, 0, opened.append, prepare=prepare)
    try:
        client = socket.create_connection(("127.0.0.1", listeners.port))
        await eventually(lambda: bool(made) and made[0].aborted == 1)
        assert opened == []
        client.close()
    finally:
        await listeners.close()


class Owner:
    """A forward that no longer accepts connections (it is stopping)."""

    id = "f1"
    namespace = "default"
    reason = ""
    remote_port = 80
    spec = ForwardSpec(target="svc/echo", remote_port=80)
    accepting = False
    local_port = 8080
    faulty = False

    def add_log(self, level: LogLevel, message: str, kind: LogKind = LogKind.NOTE) -> None:
        pass

    def log_connection(self, port: int) -> None:
        pass

    def tunnel_failed(self, exc: BaseException, text: str) -> None:
        pass

    def demand(self) -> bool:
        return False

    def counters_changed(self) -> None:
        pass


async def test_a_refused_connection_gives_up_its_streams() -> None:
    router = Router()
    router.tunnel = cast(PodTunnel, object())
    connections = Connections(Owner(), router)
    made = Made()
    prepared = Prepared(cast(Resolution, None), cast(TunnelStream, made), 0.0)
    local = LocalConnection(connections.accept, prepared)
    connections.accept(local)
    assert made.aborted == 1
    assert len(connections) == 0
