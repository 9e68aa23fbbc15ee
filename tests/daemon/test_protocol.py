"""The daemon's protocol: the parser on its own (examples and Hypothesis), then the same
rules over the real socket of an in-process daemon: a line that breaks the protocol gets one
error and the connection is closed, an engine error is an ordinary reply, and no client (a
crowd, one that never reads, one that vanishes mid-request, one too many) hurts the others."""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import socket
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from portfwd.daemon import protocol as proto
from portfwd.daemon.client import DaemonClient
from portfwd.daemon.replies import RemoteError
from portfwd.daemon.server import DaemonServer
from portfwd.engine.manager import Manager
from portfwd.engine.serial import spec_to_dict
from portfwd.errors import InputError
from portfwd.sandbox.cluster import SandboxCluster
from portfwd.store.session import Session
from portfwd.store.state import StateStore

from .conftest import Dirs, InProcessDaemon

pytestmark = pytest.mark.timeout(120)

BOUND = 30  # seconds: only keeps a broken build from hanging, never a timing assertion


def line(message: Any) -> bytes:
    return json.dumps(message).encode() + b"\n"


def hello(rid: int = 0, version: Any = proto.PROTOCOL_VERSION) -> bytes:
    return line({"id": rid, "op": "hello", "args": {"version": version, "client": "raw test"}})


# -- the parser -------------------------------------------------------------------------------


def test_a_good_request_parses() -> None:
    request = proto.parse_request(b'{"id": 7, "op": "stop", "args": {"id": "web"}}\n')
    assert request == proto.Request(7, "stop", {"id": "web"})


def test_args_default_to_an_empty_object() -> None:
    assert proto.parse_request(b'{"id": 0, "op": "snapshot"}') == proto.Request(0, "snapshot", {})


def test_the_largest_id_is_accepted() -> None:
    assert proto.parse_request(line({"id": 2**53 - 1, "op": "status"})).id == 2**53 - 1


@pytest.mark.parametrize(
    "rid",
    [-1, True, False, 1.0, 1.5, "1", None, [1], {"n": 1}, 2**53],
    ids=lambda v: repr(v),
)
def test_an_id_that_is_not_a_non_negative_integer_is_refused(rid: Any) -> None:
    with pytest.raises(proto.ProtocolError) as info:
        proto.parse_request(line({"id": rid, "op": "status", "args": {}}))
    assert info.value.kind == proto.BAD_REQUEST
    assert '"id"' in str(info.value)


def test_a_missing_id_is_refused() -> None:
    with pytest.raises(proto.ProtocolError) as info:
        proto.parse_request(line({"op": "status", "args": {}}))
    assert info.value.kind == proto.BAD_REQUEST


@pytest.mark.parametrize("op", ["frobnicate", "", "HELLO", "snapshot ", None, 3, ["status"]])
def test_an_unknown_operation_is_refused(op: Any) -> None:
    with pytest.raises(proto.ProtocolError) as info:
        proto.parse_request(line({"id": 1, "op": op, "args": {}}))
    assert info.value.kind == proto.BAD_REQUEST
    assert "unknown operation" in str(info.value)


def test_a_long_unknown_operation_is_not_echoed_back() -> None:
    with pytest.raises(proto.ProtocolError) as info:
        proto.parse_request(line({"id": 1, "op": "x" * 10_000}))
    assert "x" * 41 not in str(info.value)


def test_a_missing_operation_is_refused() -> None:
    with pytest.raises(proto.ProtocolError):
        proto.parse_request(line({"id": 1, "args": {}}))


@pytest.mark.parametrize("args", [[], [1, 2], "x", 3, True, None])
def test_args_that_are_not_an_object_are_refused(args: Any) -> None:
    with pytest.raises(proto.ProtocolError) as info:
        proto.parse_request(line({"id": 1, "op": "status", "args": args}))
    assert '"args"' in str(info.value)


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"\n",
        b"not json\n",
        b"[1, 2]\n",
        b'"text"\n',
        b"3\n",
        b"null\n",
        b"{\n",
        b"\xff\xfe\xfd",
    ],
    ids=repr,
)
def test_what_is_not_a_json_object_is_refused(raw: bytes) -> None:
    with pytest.raises(proto.ProtocolError) as info:
        proto.decode_line(raw)
    assert info.value.kind == proto.BAD_REQUEST
    with pytest.raises(proto.ProtocolError):
        proto.parse_request(raw)


def test_json_nested_too_deeply_is_a_protocol_error() -> None:
    deep = b'{"id": 1, "op": "status", "args": {"x": ' + b"[" * 200_000 + b"]" * 200_000 + b"}}"
    with pytest.raises(proto.ProtocolError):
        proto.parse_request(deep)


def test_encode_is_one_compact_line_and_round_trips() -> None:
    message = {"id": 3, "ok": {"text": "two\nlines", "n": [1, 2.5, None, True]}}
    encoded = proto.encode(message)
    assert encoded.endswith(b"\n")
    assert encoded.count(b"\n") == 1
    assert b": " not in encoded and b", " not in encoded
    assert proto.decode_line(encoded) == message


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_encode_refuses_nan_and_infinity(value: float) -> None:
    with pytest.raises(ValueError):
        proto.encode({"id": 1, "ok": {"x": value}})


def test_error_and_reply_shapes() -> None:
    assert json.loads(proto.reply(4, [1])) == {"id": 4, "ok": [1]}
    assert json.loads(proto.error(None, proto.REFUSED, "no")) == {
        "id": None,
        "error": {"type": "refused", "message": "no"},
    }


def _parse_or_protocol_error(raw: bytes) -> None:
    """parse_request may refuse with ProtocolError, nothing else; what it accepts is sane."""
    try:
        request = proto.parse_request(raw)
    except proto.ProtocolError as exc:
        assert exc.kind == proto.BAD_REQUEST
        return
    assert isinstance(request.id, int) and not isinstance(request.id, bool)
    assert 0 <= request.id < 2**53
    assert request.op in proto.OPS
    assert isinstance(request.args, dict)


@given(st.binary(max_size=2000))
def test_arbitrary_bytes_give_a_request_or_a_protocol_error(raw: bytes) -> None:
    _parse_or_protocol_error(raw)


JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=10), children, max_size=5)
    ),
    max_leaves=30,
)


@given(JSON)
def test_arbitrary_json_values_give_a_request_or_a_protocol_error(value: Any) -> None:
    _parse_or_protocol_error(json.dumps(value).encode())


@given(
    st.fixed_dictionaries(
        {},
        optional={
            "id": JSON | st.integers(min_value=-5, max_value=2**54),
            "op": JSON | st.sampled_from(sorted(proto.OPS)),
            "args": JSON,
        },
    )
)
def test_arbitrary_request_shaped_objects_give_a_request_or_a_protocol_error(
    value: dict[str, Any],
) -> None:
    _parse_or_protocol_error(json.dumps(value).encode())


# -- over the socket: raw connections ---------------------------------------------------------


class Raw:
    """A plain unix socket to the daemon, read and written by hand (asyncio's streams would
    turn a reset after the last line into an error before that line could be read)."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buffer = b""
        self.loop = asyncio.get_running_loop()

    @classmethod
    async def open(cls, path: Path) -> Raw:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.setblocking(False)
        try:
            async with asyncio.timeout(BOUND):
                await asyncio.get_running_loop().sock_connect(sock, str(path))
        except BaseException:
            sock.close()
            raise
        return cls(sock)

    async def send(self, data: bytes) -> None:
        async with asyncio.timeout(BOUND):
            await self.loop.sock_sendall(self.sock, data)

    async def line(self) -> dict[str, Any]:
        async with asyncio.timeout(BOUND):
            while b"\n" not in self.buffer:
                chunk = await self.loop.sock_recv(self.sock, 65536)
                if not chunk:
                    raise AssertionError(f"EOF before a whole line: {self.buffer!r}")
                self.buffer += chunk
        first, self.buffer = self.buffer.split(b"\n", 1)
        data: dict[str, Any] = json.loads(first)
        assert isinstance(data, dict)
        return data

    async def rest(self, *, reset_is_eof: bool = False) -> bytes:
        """Everything until the daemon closes the connection."""
        async with asyncio.timeout(BOUND):
            while True:
                try:
                    chunk = await self.loop.sock_recv(self.sock, 65536)
                except ConnectionResetError:
                    if not reset_is_eof:
                        raise
                    chunk = b""
                if not chunk:
                    data, self.buffer = self.buffer, b""
                    return data
                self.buffer += chunk

    async def said_hello(self) -> None:
        await self.send(hello())
        answer = await self.line()
        assert answer["id"] == 0 and "ok" in answer, answer
        assert answer["ok"]["protocol"] == proto.PROTOCOL_VERSION

    def close(self) -> None:
        self.sock.close()


async def one_error_then_eof(raw: Raw, *, reset_is_eof: bool = False) -> dict[str, Any]:
    """The connection's remaining output is exactly one error line, then the end."""
    data = await raw.rest(reset_is_eof=reset_is_eof)
    assert data.endswith(b"\n"), data
    lines = data.split(b"\n")[:-1]
    assert len(lines) == 1, lines
    message: dict[str, Any] = json.loads(lines[0])
    assert set(message) == {"id", "error"}, message
    # A version error also carries the daemon's version (a client words the mismatch itself).
    extra = {"version"} if message["error"].get("type") == proto.VERSION else set()
    assert set(message["error"]) == {"type", "message"} | extra, message
    assert isinstance(message["error"]["message"], str) and message["error"]["message"]
    return message


async def still_serves(daemon: InProcessDaemon) -> None:
    async with asyncio.timeout(BOUND):
        client = await daemon.client("after")
        try:
            assert isinstance(await client.request("snapshot"), list)
        finally:
            await client.close()


# (name, says hello first, what it sends, expected id, expected type, in the message)
BROKEN = [
    ("not-json", True, b"this is not json\n", None, proto.BAD_REQUEST, "JSON"),
    ("json-array", True, b'[{"id": 1, "op": "status"}]\n', None, proto.BAD_REQUEST, "list"),
    ("unknown-op", True, line({"id": 7, "op": "frobnicate"}), 7, proto.BAD_REQUEST, "frobnicate"),
    ("args-list", True, line({"id": 8, "op": "status", "args": []}), 8, proto.BAD_REQUEST, "args"),
    ("negative-id", True, line({"id": -1, "op": "status"}), -1, proto.BAD_REQUEST, "id"),
    ("before-hello", False, line({"id": 3, "op": "snapshot"}), 3, proto.BAD_REQUEST, "hello"),
    ("second-hello", True, hello(rid=1), 1, proto.BAD_REQUEST, "hello"),
    ("junk-before-hello", False, b"\x00\xff garbage\n", None, proto.BAD_REQUEST, "JSON"),
]


@pytest.mark.parametrize(
    ("greets", "sent", "rid", "kind", "mentions"),
    [case[1:] for case in BROKEN],
    ids=[case[0] for case in BROKEN],
)
async def test_a_broken_line_gets_one_error_and_the_connection_is_closed(
    daemon: InProcessDaemon, greets: bool, sent: bytes, rid: Any, kind: str, mentions: str
) -> None:
    raw = await Raw.open(daemon.paths.socket)
    try:
        if greets:
            await raw.said_hello()
        await raw.send(sent)
        message = await one_error_then_eof(raw)
    finally:
        raw.close()
    assert message["id"] == rid, message
    assert message["error"]["type"] == kind, message
    assert mentions in message["error"]["message"], message
    await still_serves(daemon)


async def test_a_hello_with_another_version_gets_a_version_error_naming_both(
    daemon: InProcessDaemon,
) -> None:
    raw = await Raw.open(daemon.paths.socket)
    try:
        await raw.send(hello(version=999))
        message = await one_error_then_eof(raw)
    finally:
        raw.close()
    assert message["id"] == 0
    assert message["error"]["type"] == proto.VERSION
    text = message["error"]["message"]
    assert "999" in text, text
    assert f"protocol {proto.PROTOCOL_VERSION}" in text, text
    assert message["error"]["version"] == proto.PROTOCOL_VERSION
    await still_serves(daemon)


async def test_a_line_without_its_newline_before_eof_gets_one_error(
    daemon: InProcessDaemon,
) -> None:
    raw = await Raw.open(daemon.paths.socket)
    try:
        await raw.said_hello()
        await raw.send(b'{"id": 1, "op": "snapshot"}')
        raw.sock.shutdown(socket.SHUT_WR)
        message = await one_error_then_eof(raw)
    finally:
        raw.close()
    assert message["error"]["type"] == proto.BAD_REQUEST
    assert "newline" in message["error"]["message"]
    await still_serves(daemon)


@pytest.mark.parametrize("greets", [True, False], ids=["after-hello", "instead-of-hello"])
async def test_a_line_longer_than_the_limit_gets_one_error_and_is_closed(
    daemon: InProcessDaemon, greets: bool
) -> None:
    prefix = b'{"id": 9, "op": "snapshot", "args": {"pad": "'
    body = prefix + b"x" * proto.MAX_REQUEST_BYTES + b'"}}\n'
    assert len(body) > proto.MAX_REQUEST_BYTES + 1
    raw = await Raw.open(daemon.paths.socket)
    try:
        if greets:
            await raw.said_hello()
        chunk = 64 * 1024
        for start in range(0, len(body), chunk):
            try:
                await raw.send(body[start : start + chunk])
            except (BrokenPipeError, ConnectionResetError):
                break  # the daemon stopped listening once the limit was passed: as it should
        # The daemon cannot read all of an endless line before it hangs up, so the kernel may
        # report what it left unread as a reset after the error line: that too is "closed".
        message = await one_error_then_eof(raw, reset_is_eof=True)
    finally:
        raw.close()
    assert message["error"]["type"] == proto.BAD_REQUEST
    assert str(proto.MAX_REQUEST_BYTES) in message["error"]["message"]
    await still_serves(daemon)


async def test_a_line_just_under_the_limit_is_served(daemon: InProcessDaemon) -> None:
    prefix = b'{"id": 9, "op": "snapshot", "args": {"pad": "'
    suffix = b'"}}\n'
    body = prefix + b"x" * (proto.MAX_REQUEST_BYTES - len(prefix) - len(suffix)) + suffix
    assert len(body) == proto.MAX_REQUEST_BYTES
    raw = await Raw.open(daemon.paths.socket)
    try:
        await raw.said_hello()
        await raw.send(body)
        answer = await raw.line()  # an ordinary reply: "pad" is no argument of snapshot
        assert answer["id"] == 9
        assert answer["error"]["type"] == proto.INPUT, answer
        await raw.send(line({"id": 10, "op": "snapshot"}))
        assert await raw.line() == {"id": 10, "ok": []}
    finally:
        raw.close()


# -- over the socket: engine errors are replies -----------------------------------------------


async def test_engine_errors_are_ordinary_replies_and_keep_the_connection(
    daemon: InProcessDaemon,
) -> None:
    client = await daemon.client()
    try:
        async with asyncio.timeout(BOUND):
            with pytest.raises(KeyError):
                await client.request("stop", id="nope")
            assert await client.request("snapshot") == []
            with pytest.raises(KeyError):
                await client.request("remove", id="nope")
            with pytest.raises(InputError):
                await client.request("add", spec={"target": "svc/echo"})  # no remote port
            assert await client.request("snapshot") == []
            assert client.lost is None
    finally:
        await client.close()


async def test_unknown_argument_names_are_an_input_error(daemon: InProcessDaemon) -> None:
    client = await daemon.client()
    try:
        async with asyncio.timeout(BOUND):
            with pytest.raises(InputError) as info:
                await client.request("snapshot", bogus=1)
            assert "bogus" in str(info.value)
            with pytest.raises(InputError):
                await client.request(
                    "add", spec=spec_to_dict(daemon.spec(name="typo")), start=False, strat=True
                )
            assert await client.request("snapshot") == []  # nothing was added, still connected
            assert daemon.manager.snapshot() == []
    finally:
        await client.close()


# -- over the socket: many clients, bad clients -----------------------------------------------


async def test_twenty_clients_at_once_each_add_and_list(daemon: InProcessDaemon) -> None:
    async def one(i: int) -> list[Any]:
        client = await daemon.client(f"crowd-{i}")
        try:
            added = await client.request(
                "add", spec=spec_to_dict(daemon.spec(name=f"crowd-{i}")), start=False
            )
            assert added["spec"]["name"] == f"crowd-{i}"
            snapshot: list[Any] = await client.request("snapshot")
            assert f"crowd-{i}" in {s["spec"].get("name") for s in snapshot}
            return snapshot
        finally:
            await client.close()

    async with asyncio.timeout(60):
        results = await asyncio.gather(*(one(i) for i in range(20)))
    assert len(results) == 20
    names = {snap.spec.name for snap in daemon.manager.snapshot()}
    assert names == {f"crowd-{i}" for i in range(20)}
    await still_serves(daemon)


async def echo_through(port: int, payload: bytes) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(payload)
        await writer.drain()
        assert await reader.readexactly(len(payload)) == payload
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()


async def test_a_subscriber_that_never_reads_does_not_slow_anyone(
    daemon: InProcessDaemon,
) -> None:
    stalled = await Raw.open(daemon.paths.socket)
    busy: DaemonClient | None = None
    try:
        await stalled.send(
            line({"id": 0, "op": "hello", "args": {"version": 1, "client": "stalled"}})
            + line({"id": 1, "op": "subscribe", "args": {}})
        )
        # ... and never reads again.
        busy = await daemon.client("busy")

        def stuck() -> bool:
            # The daemon's side of the stalled connection: once the kernel takes no more,
            # its output waits in the transport (private, but it is what this test is about).
            return any(
                c.name == "stalled" and c.writer.transport.get_write_buffer_size() > 0
                for c in daemon.server._clients
            )

        # Churn until the stalled client's socket is full (events: added, log, removed).
        async with asyncio.timeout(90):
            i = 0
            while not stuck():
                await busy.request(
                    "add", spec=spec_to_dict(daemon.spec(name=f"churn-{i}")), start=False
                )
                await busy.request("remove", id=f"churn-{i}")
                i += 1

        async with asyncio.timeout(BOUND):
            added = await busy.request("add", spec=spec_to_dict(daemon.spec(name="moved")))
        assert added["state"] == "active", added
        port = added["local_port"]
        for n in range(20):
            async with asyncio.timeout(BOUND):
                await echo_through(port, f"payload {n} ".encode() * 100)
                snapshot = await busy.request("snapshot")
            assert [s["spec"].get("name") for s in snapshot] == ["moved"]
        async with asyncio.timeout(BOUND):
            await busy.request("stop", id="moved")
            again = await busy.request("start", id="moved")
        assert again["state"] == "active", again
        async with asyncio.timeout(BOUND):
            await echo_through(again["local_port"], b"after restart")
        assert daemon.manager.get(added["id"]).state.value == "active"
        assert busy.lost is None

        stalled.close()  # gone at last: the daemon lets go of it
        async with asyncio.timeout(BOUND):
            while True:
                status = await busy.request("status")
                if status["clients"] == 1:
                    break
                await asyncio.sleep(0.02)
    finally:
        stalled.close()
        if busy is not None:
            await busy.close()
    await still_serves(daemon)


async def test_a_client_gone_mid_request_leaves_the_daemon_serving(
    daemon: InProcessDaemon,
) -> None:
    raw = await Raw.open(daemon.paths.socket)
    try:
        await raw.said_hello()
        await raw.send(
            line({"id": 1, "op": "add", "args": {"spec": spec_to_dict(daemon.spec(name="orphan"))}})
        )
    finally:
        raw.close()  # at once: the reply has nowhere to go

    client = await daemon.client()
    try:
        async with asyncio.timeout(BOUND):
            while True:
                found = [
                    s for s in await client.request("snapshot") if s["spec"].get("name") == "orphan"
                ]
                if found and found[0]["state"] == "active":
                    break
                await asyncio.sleep(0.05)
        await echo_through(found[0]["local_port"], b"the request finished")
    finally:
        await client.close()
    await still_serves(daemon)


async def test_one_client_more_than_max_clients_is_refused(
    dirs: Dirs, sandbox: SandboxCluster
) -> None:
    manager = Manager(kubeconfig=str(sandbox.kubeconfig_path), detect_wake=False)
    store = StateStore(dirs.config / "state.yaml")
    session = Session(manager, store, await asyncio.to_thread(store.load))
    server = DaemonServer(manager, session, dirs.paths, max_clients=2)
    clients: list[DaemonClient] = []
    try:
        await server.start()
        await server.restore()
        for n in range(2):
            clients.append(await DaemonClient.connect(dirs.paths, client=f"c{n}"))
        with pytest.raises(RemoteError) as info:
            extra = await DaemonClient.connect(dirs.paths, client="third")
            clients.append(extra)
        assert info.value.kind == proto.REFUSED
        assert "at most 2" in str(info.value), str(info.value)
        for client in clients:  # the two inside are unharmed
            assert await client.request("snapshot") == []

        await clients.pop().close()  # one leaves: there is room again (once it noticed)
        async with asyncio.timeout(BOUND):
            while True:
                try:
                    clients.append(await DaemonClient.connect(dirs.paths, client="later"))
                    break
                except RemoteError as exc:
                    assert exc.kind == proto.REFUSED
                    await asyncio.sleep(0.02)
        assert await clients[-1].request("snapshot") == []
    finally:
        for client in clients:
            await client.close()
        await asyncio.wait_for(server.close(), 30)
