"""What the daemon's replies mean on the client side, shared by the asyncio client and the
blocking one: errors as the exceptions the in-process engine would raise, hello and welcome."""

from __future__ import annotations

import os
from typing import Any

from portfwd import version
from portfwd.daemon import protocol as proto
from portfwd.daemon.paths import DaemonPaths
from portfwd.errors import InputError, PortfwdError
from portfwd.safetext import escape_controls


class NotRunning(PortfwdError):
    """No daemon answers on the socket."""


class DaemonGone(PortfwdError):
    """The connection to the daemon ended (it stopped, or was killed)."""


class RemoteError(PortfwdError):
    """The daemon refused a request; `kind` is the protocol's error type."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


def raise_error(kind: str, message: str) -> None:
    """The daemon's error as the exception the in-process engine would have raised."""
    message = escape_controls(message)
    if kind == proto.NOT_FOUND:
        raise KeyError(message)
    if kind == proto.INPUT:
        raise InputError(message)
    raise RemoteError(kind, message)


def unreachable(paths: DaemonPaths, exc: BaseException) -> PortfwdError:
    if isinstance(exc, FileNotFoundError | ConnectionRefusedError):
        return NotRunning("no portfwd daemon is running (start one with `portfwd daemon --detach`)")
    if isinstance(exc, TimeoutError):
        return NotRunning(f"the portfwd daemon at {paths.socket} does not answer")
    if isinstance(exc, PermissionError):
        return PortfwdError(
            f"permission denied on {paths.socket}: that daemon belongs to another user"
        )
    return NotRunning(f"cannot reach the portfwd daemon at {paths.socket}: {exc}")


def hello(client: str) -> bytes:
    args = {
        "version": proto.PROTOCOL_VERSION,
        "client": f"portfwd {version()} {client} (pid {os.getpid()})",
    }
    return proto.encode({"id": 0, "op": proto.HELLO, "args": args})


def welcome(data: dict[str, Any]) -> dict[str, Any]:
    """The daemon's answer to hello: its status, or the refusal as an exception."""
    err = data.get("error")
    if isinstance(err, dict):
        kind = str(err.get("type"))
        if kind == proto.VERSION:
            raise RemoteError(kind, proto.version_mismatch(err.get("version", "?"), "client"))
        raise RemoteError(kind, escape_controls(str(err.get("message"))))
    welcome = data.get("ok")
    return welcome if isinstance(welcome, dict) else {}


def result(data: dict[str, Any]) -> Any:
    err = data.get("error")
    if isinstance(err, dict):
        raise_error(str(err.get("type")), str(err.get("message")))
    return data.get("ok")
