"""The daemon's operations, in one table: `op -> (argument codec, engine method, result codec)`.

The server dispatches from :data:`TABLE`; the blocking client (`sync_client.py`) and the
asyncio `RemoteEngine` (`client.py`) encode their calls and decode the replies with the same
:class:`Op` records, so the vocabulary of the socket exists once. No other module writes an
operation's name: front ends call the clients' methods, which carry `EngineAPI`'s names.

An argument codec is a tuple of :class:`Arg` (its wire name, its kind, its default); the
server checks each one's type and refuses arguments it does not know (a typo in a script is
worth a message, not a silent default). A result codec turns the engine's value into plain
data (`engine/serial.py`) and back.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from portfwd.engine.model import ConnectionInfo, ForwardSnapshot, LogEntry
from portfwd.engine.podlogs import MAX_WAIT as POD_LOG_WAIT
from portfwd.engine.podlogs import PodLogPage
from portfwd.engine.serial import (
    connection_from_dict,
    connection_to_dict,
    log_from_dict,
    log_to_dict,
    snapshot_from_dict,
    snapshot_to_dict,
    spec_from_dict,
    spec_to_dict,
)
from portfwd.safetext import escape_controls

R = TypeVar("R")

MAX_LOG_LINES = 1000  # per forward, in one `logs` or `subscribe` reply


class BadArgs(Exception):
    """A request's arguments have the wrong names or types (answered as an input error)."""


# -- argument codecs ------------------------------------------------------------------------


@dataclass(frozen=True)
class Arg:
    """One argument: `kind` is text, maybe-text, flag, number or spec; `param` is the engine
    method's parameter it fills (None: the server uses it itself, e.g. a line limit)."""

    name: str
    kind: str
    default: Any = None
    low: int = 0
    high: int = 0
    param: str | None = None

    def decode(self, raw: dict[str, Any]) -> Any:
        """The argument's value from a request (popped from `raw`), its type checked."""
        value = raw.pop(self.name, None)
        name = self.name
        if self.kind == "text":
            if not isinstance(value, str) or not value:
                raise BadArgs(f'"{name}" must be a non-empty string')
            return value
        if self.kind == "maybe-text":
            if value is not None and not isinstance(value, str):
                raise BadArgs(f'"{name}" must be a string or null')
            return value
        if value is None:
            if self.kind == "spec":
                raise BadArgs(f'"{name}" must be a JSON object')
            return self.default
        if self.kind == "flag":
            if not isinstance(value, bool):
                raise BadArgs(f'"{name}" must be true or false')
            return value
        if self.kind == "number":
            if (
                not isinstance(value, int)
                or isinstance(value, bool)
                or not self.low <= value <= self.high
            ):
                raise BadArgs(f'"{name}" must be an integer from {self.low} to {self.high}')
            return value
        if not isinstance(value, dict):
            raise BadArgs(f'"{name}" must be a JSON object')
        return spec_from_dict(value, strict=True)

    def encode(self, value: Any) -> Any:
        return spec_to_dict(value) if self.kind == "spec" else value


FORWARD = Arg("id", "text", param="forward_id")  # a forward's id or name


# -- result codecs --------------------------------------------------------------------------


@dataclass(frozen=True)
class Result(Generic[R]):
    """How an operation's result crosses the socket."""

    to_wire: Callable[[Any], Any]
    from_wire: Callable[[Any], R]


def _same(value: Any) -> Any:
    return value


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _snapshots(value: Any) -> list[ForwardSnapshot]:
    return [snapshot_from_dict(raw) for raw in value]


def _logs(value: Any) -> list[LogEntry]:
    return [log_from_dict(raw) for raw in value]


def _connections(value: Any) -> list[ConnectionInfo]:
    return [connection_from_dict(raw) for raw in value]


SNAPSHOT: Result[ForwardSnapshot] = Result(snapshot_to_dict, snapshot_from_dict)
SNAPSHOTS: Result[list[ForwardSnapshot]] = Result(
    lambda snaps: [snapshot_to_dict(s) for s in snaps], _snapshots
)
LOGS: Result[list[LogEntry]] = Result(lambda entries: [log_to_dict(e) for e in entries], _logs)
CONNECTIONS: Result[list[ConnectionInfo]] = Result(
    lambda infos: [connection_to_dict(c) for c in infos], _connections
)
DATA: Result[dict[str, Any]] = Result(_same, _dict)


# -- the table ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Op(Generic[R]):
    """One operation: its wire name, its arguments, what serves it, its result.

    `method` names the `EngineAPI` method the server calls (the forward's argument resolved
    from a name or an id first); `None` for the daemon's own operations (`server.py` serves
    them: status, subscriptions, shutdown)."""

    name: str
    args: tuple[Arg, ...]
    method: str | None
    result: Result[R]

    def request_args(self, **values: Any) -> dict[str, Any]:
        """The wire arguments of a call (client side); unset optional ones are left out."""
        known = {a.name: a for a in self.args}
        out: dict[str, Any] = {}
        for key, value in values.items():
            arg = known[key]  # a KeyError here is a bug in a client
            if value is not None or arg.kind == "maybe-text":
                out[key] = arg.encode(value)
        return out

    def decode_args(self, raw: Mapping[str, Any]) -> dict[str, Any]:
        """The arguments of a request, checked (server side); BadArgs for a wrong one."""
        left = dict(raw)
        values = {arg.name: arg.decode(left) for arg in self.args}
        if left:
            names = ", ".join(sorted(escape_controls(str(k))[:40] for k in left))
            raise BadArgs(f"unknown argument(s): {names}")
        return values

    def decode_result(self, value: Any) -> R:
        return self.result.from_wire(value)


STATUS: Op[dict[str, Any]] = Op("status", (), None, DATA)
SNAPSHOT_ALL: Op[list[ForwardSnapshot]] = Op("snapshot", (), "snapshot", SNAPSHOTS)
LOGS_OF: Op[list[LogEntry]] = Op(
    "logs",
    (
        Arg("id", "maybe-text", param="forward_id"),
        Arg("limit", "number", MAX_LOG_LINES, 0, MAX_LOG_LINES),
    ),
    "logs",
    LOGS,
)
CONNECTIONS_OF: Op[list[ConnectionInfo]] = Op(
    "connections", (FORWARD,), "open_connections", CONNECTIONS
)
ADD: Op[ForwardSnapshot] = Op(
    "add",
    (
        Arg("spec", "spec", param="spec"),
        Arg("start", "flag", True, param="start"),
        Arg("id", "maybe-text", param="forward_id"),
    ),
    "add",
    SNAPSHOT,
)
START: Op[ForwardSnapshot] = Op("start", (FORWARD,), "start", SNAPSHOT)
STOP: Op[ForwardSnapshot] = Op("stop", (FORWARD,), "stop", SNAPSHOT)
RESTART: Op[ForwardSnapshot] = Op("restart", (FORWARD,), "restart", SNAPSHOT)
UPDATE: Op[ForwardSnapshot] = Op(
    "update", (FORWARD, Arg("spec", "spec", param="spec")), "update", SNAPSHOT
)
SET_RECONNECT: Op[ForwardSnapshot] = Op(
    "set_reconnect",
    (FORWARD, Arg("enabled", "flag", True, param="enabled")),
    "set_reconnect",
    SNAPSHOT,
)
SET_HTTP_LOG: Op[ForwardSnapshot] = Op(
    "set_http_log",
    (FORWARD, Arg("enabled", "flag", True, param="enabled")),
    "set_http_log",
    SNAPSHOT,
)
POD_LOG: Op[PodLogPage] = Op(
    "pod_log",
    (
        FORWARD,
        Arg("container", "maybe-text", param="container"),
        Arg("after", "number", 0, 0, 1 << 53, param="after"),
        Arg("wait", "number", 0, 0, POD_LOG_WAIT, param="wait"),
    ),
    "pod_log",
    Result(lambda page: page.to_dict(), PodLogPage.from_dict),
)
REMOVE: Op[dict[str, Any]] = Op("remove", (FORWARD,), "remove", DATA)
SUBSCRIBE: Op[dict[str, Any]] = Op(
    "subscribe", (Arg("logs", "number", 0, 0, MAX_LOG_LINES),), None, DATA
)
UNSUBSCRIBE: Op[dict[str, Any]] = Op("unsubscribe", (), None, DATA)
SHUTDOWN: Op[dict[str, Any]] = Op("shutdown", (), None, DATA)

TABLE: dict[str, Op[Any]] = {
    op.name: op
    for op in (
        STATUS,
        SNAPSHOT_ALL,
        LOGS_OF,
        CONNECTIONS_OF,
        ADD,
        START,
        STOP,
        RESTART,
        UPDATE,
        SET_RECONNECT,
        SET_HTTP_LOG,
        POD_LOG,
        REMOVE,
        SUBSCRIBE,
        UNSUBSCRIBE,
        SHUTDOWN,
    )
}
