"""A new connection's tunnel streams go on the wire the moment it is accepted.

The kubelet dials the pod when it sees the pair, so opening it at accept (kubectl sends its
streams at accept too) lets that dial run while the client is still sending its first bytes
(issue 22: a new connection's p50). Streams opened for a connection that is never served
are given up, or the pod's session would keep them (and the kubelet its pod connection).
"""

from __future__ import annotations

import socket
import struct
from typing import Any

import pytest

from portfwd.engine.connections import Connection, Connections
from portfwd.engine.manager import Manager
from portfwd.engine.model import ForwardSpec, ForwardState
from portfwd.tunnel.spdy import SpdySession
from tests.support.echo import echo_once
from tests.support.wait import eventually


async def _active(manager: Manager, protocol: str = "spdy") -> str:
    fid = await manager.add(ForwardSpec(target="svc/echo", remote_port=80, protocol=protocol))
    snap = manager.get(fid)
    assert snap.state is ForwardState.ACTIVE, snap.reason
    return fid


def _session(manager: Manager) -> SpdySession:
    (session,) = manager.tunnels.sessions()
    return session


async def test_the_streams_are_on_the_wire_before_the_connection_is_served(
    manager: Manager, monkeypatch: pytest.MonkeyPatch
) -> None:
    port = manager.get(await _active(manager)).local_port
    assert await echo_once(port, b"warm") == b"warm"
    session = _session(manager)
    seen: list[tuple[int, bool]] = []
    serve = Connections._serve

    async def watched(self: Connections, conn: Connection, *args: Any) -> None:
        # What the session had sent when the connection's own task first ran.
        seen.append((session.streams_total, conn.prepared is not None))
        await serve(self, conn, *args)

    monkeypatch.setattr(Connections, "_serve", watched)
    before = session.streams_total
    assert await echo_once(port, b"x" * 100) == b"x" * 100
    # The error and data streams were opened (ids given, SYN_STREAMs written) at accept.
    assert seen == [(before + 2, True)]


async def test_a_connection_opens_the_session_itself_when_none_is_open(
    manager: Manager,
) -> None:
    """Nothing to open at accept (the pod's session was closed): the connection's own
    task opens a session and the streams, as before."""
    port = manager.get(await _active(manager)).local_port
    session = _session(manager)
    session.close("closed by the test")
    await eventually(lambda: session not in manager.tunnels.sessions())
    assert await echo_once(port, b"after") == b"after"
    assert _session(manager) is not session


async def test_streams_of_connections_that_end_at_once_are_given_back(
    manager: Manager,
) -> None:
    """Clients that connect and leave without a byte (some with a reset), and a forward
    stopped with connections queued: every pair opened at accept ends, and the pod's
    session (held by a second forward to the same pod) keeps none open. (The paths where a
    connection never reaches its task are pinned down in tests/tunnel/test_listener_accept.py.)"""
    first = await _active(manager)
    other = await _active(manager)  # holds the same pod's session once the first stops
    port = manager.get(first).local_port
    assert await echo_once(port, b"warm") == b"warm"
    session = _session(manager)

    total = manager.get(first).stats.connections_total
    for i in range(40):
        sock = socket.create_connection(("127.0.0.1", port))
        if i % 2:  # a reset instead of a FIN
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.close()
    await eventually(
        lambda: (
            manager.get(first).stats.connections_total == total + 40
            and manager.get(first).stats.connections_open == 0
        )
    )

    # Queued in the kernel before the loop accepts any; the forward stops meanwhile.
    queued = [socket.create_connection(("127.0.0.1", port)) for _ in range(30)]
    try:
        await manager.stop(first)
    finally:
        for sock in queued:
            sock.close()

    await eventually(lambda: session.open_streams == 0)
    assert session.usable
    assert await echo_once(manager.get(other).local_port, b"still") == b"still"


async def test_open_now_opens_only_what_takes_no_waiting(manager: Manager) -> None:
    fwd = manager._forwards[await _active(manager)]
    tunnel, route = fwd.router.tunnel, fwd.router.route
    assert tunnel is not None and route is not None
    pod = route.pod
    session = _session(manager)
    # No protocol chosen in that namespace yet, and no session to that pod: nothing.
    assert tunnel.open_now("elsewhere", pod.name, 80, pod.meta.uid) is None
    assert tunnel.open_now(fwd.namespace, "no-such-pod", 80) is None
    stream = tunnel.open_now(fwd.namespace, pod.name, 80, pod.meta.uid)
    assert stream is not None
    assert session.open_streams == 2  # committed: both streams are on the wire
    stream.abort()
    await eventually(lambda: session.open_streams == 0)
