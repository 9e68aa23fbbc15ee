"""Accepting: the listener's `prepare` runs the moment a connection is accepted, is handed to
its owner once, and is given up (aborted) when the connection never opens or is refused; an
accepted connection has its peer's address and Nagle's delay off."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from typing import Any, cast

import pytest

from portfwd.engine.connections import Connections, Prepared
from portfwd.engine.model import ForwardSpec, LogKind, LogLevel
from portfwd.engine.routing import Router
from portfwd.kube.objects import ObjectMeta, Pod
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


async def test_a_set_up_dropped_before_it_ran_gives_up_what_was_prepared() -> None:
    """The listeners close in the loop turn that accepted the connection: its set-up task is
    cancelled before it ran, so nothing in it ran either; the prepared streams are given
    up all the same, and the accepted socket is closed."""
    made: list[Made] = []

    def prepare() -> Made:
        made.append(Made())
        return made[-1]

    opened: list[LocalConnection] = []
    listeners = await bind(LOOPBACK, 0, opened.append, prepare=prepare)
    client = socket.create_connection(("127.0.0.1", listeners.port))
    try:
        (acceptor,) = listeners.acceptors
        acceptor._ready()  # what the loop runs when the port is readable: accepts the client
        assert len(made) == 1 and made[0].aborted == 0
        await listeners.close()  # no turn of the loop in between
        assert made[0].aborted == 1
        assert opened == []
        client.settimeout(10)
        with contextlib.suppress(ConnectionResetError):
            assert client.recv(1) == b""  # closed on our side
    finally:
        client.close()


class Owner:
    """A forward: stopping (accepting False) or serving."""

    id = "f1"
    namespace = "default"
    reason = ""
    remote_port = 80
    spec = ForwardSpec(target="svc/echo", remote_port=80)
    local_port = 8080
    faulty = False

    def __init__(self, accepting: bool = False) -> None:
        self.accepting = accepting

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


def _route(pod: str) -> Resolution:
    return Resolution(Pod(ObjectMeta(pod, "default", uid=pod)), 9000, "", "TCP", ())


def _routed(owner: Owner, route: Resolution) -> tuple[Connections, PodTunnel]:
    router = Router()
    router.use("default", route)
    tunnel = router.tunnel = cast(PodTunnel, object())
    return Connections(owner, router), tunnel


def _accept(connections: Connections, route: Resolution, tunnel: PodTunnel) -> Made:
    """A connection accepted with streams prepared on `route` over `tunnel` (what the
    listener hands over); the streams, to see whether they were given up."""
    made = Made()
    prepared = Prepared(route, tunnel, cast(TunnelStream, made), 0.0)
    connections.accept(LocalConnection(connections.accept, prepared))
    return made


async def test_a_refused_connection_gives_up_its_streams() -> None:
    route = _route("web-1")
    connections, tunnel = _routed(Owner(accepting=False), route)
    made = _accept(connections, route, tunnel)
    assert made.aborted == 1
    assert len(connections) == 0


async def test_streams_prepared_for_a_pod_the_forward_left_are_given_up() -> None:
    """Between accept(2) and the transport's set-up the forward moved to another pod: the
    connection is served as any other (its task opens streams to the new pod)."""
    connections, tunnel = _routed(Owner(accepting=True), _route("web-2"))
    made = _accept(connections, _route("web-1"), tunnel)
    assert made.aborted == 1
    assert len(connections) == 1  # served, without them
    await connections.close_all()


async def test_streams_of_a_connection_closed_before_its_task_ran_are_given_up() -> None:
    route = _route("web-1")
    connections, tunnel = _routed(Owner(accepting=True), route)
    made = _accept(connections, route, tunnel)
    assert made.aborted == 0 and len(connections) == 1
    await connections.close_all()  # its task is cancelled before its first step
    assert made.aborted == 1
    assert len(connections) == 0
