"""A blocking client for the daemon: what `portfwd ls/stop/...` need, without paying for an
event loop (asyncio and its ssl import) at start-up, since `ls` is typed often.

Its methods carry `EngineAPI`'s names and are built from the operation table (`ops.py`):
each encodes its arguments and decodes its reply with the table's codecs. Changes answer
with the forward as it is afterwards (a snapshot), so a script prints it without asking
again."""

from __future__ import annotations

import contextlib
import itertools
import os
import socket
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, TypeVar

from portfwd.daemon import protocol as proto
from portfwd.daemon.paths import DaemonPaths, daemon_paths
from portfwd.daemon.replies import DaemonGone, hello, result, unreachable, welcome
from portfwd.daemon.trust import check_daemon

if TYPE_CHECKING:
    from portfwd.daemon import ops
    from portfwd.engine.model import ConnectionInfo, ForwardSnapshot, ForwardSpec, LogEntry
    from portfwd.engine.podlogs import PodLogPage

R = TypeVar("R")

CONNECT_TIMEOUT = 5.0
SNAPSHOT_OP = "snapshot"  # ops.SNAPSHOT_ALL's name, without the table (tests hold them equal)


def pinned_kubeconfig(given: str | None, environ: Mapping[str, str] | None = None) -> str | None:
    """The kubeconfig a forward sent to the daemon should name: the daemon reads files with
    its own environment (a service manager's), so this shell's choice must travel with the
    spec. `--kubeconfig` as an absolute path, else a single-file $KUBECONFIG; several files
    (merged) or none: the daemon's own default."""
    env = os.environ if environ is None else environ
    if given:
        return os.path.abspath(os.path.expanduser(given))
    listed = [p for p in env.get("KUBECONFIG", "").split(os.pathsep) if p]
    if len(listed) == 1:
        return os.path.abspath(os.path.expanduser(listed[0]))
    return None


class SyncClient:
    """Requests and replies over a blocking socket: what `portfwd ls/add/stop/...` need,
    without paying for an event loop at start-up (`ls` is typed often)."""

    def __init__(self, sock: socket.socket, paths: DaemonPaths) -> None:
        self._sock = sock
        self._file = sock.makefile("rb")
        self.paths = paths
        self.server: dict[str, Any] = {}
        self._ids = itertools.count(1)
        self._ahead: tuple[str, int] | None = None  # (op, id) sent with the hello

    @classmethod
    def connect(
        cls,
        paths: DaemonPaths | None = None,
        *,
        client: str = "cli",
        within: float = 30.0,
        connect_timeout: float = CONNECT_TIMEOUT,
        ahead: str | None = None,
    ) -> SyncClient:
        """Connect and say hello within `connect_timeout`; later replies within `within`.

        `ahead`: an operation without arguments sent right behind the hello, in the same
        write (the daemon reads its lines in order), so the first `request(ahead)` costs no
        round trip of its own: `portfwd ls` waits for the daemon once, not twice."""
        paths = paths or daemon_paths()
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(connect_timeout)
        try:
            sock.connect(str(paths.socket))
        except OSError as exc:
            sock.close()
            raise unreachable(paths, exc) from None
        self = cls(sock, paths)
        try:
            check_daemon(sock, paths)  # the user's own daemon, before anything is sent
            # A daemon that refuses us (full, say) says why, then closes: its line may be
            # waiting even though our hello could not be sent.
            line = hello(client)
            if ahead is not None:
                self._ahead = (ahead, next(self._ids))
                line += proto.encode({"id": self._ahead[1], "op": ahead, "args": {}})
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                sock.sendall(line)
            self.server = welcome(self._line())
        except BaseException:
            self.close()
            raise
        sock.settimeout(within)  # a start may take a while: bounded all the same
        return self

    def _line(self) -> dict[str, Any]:
        try:
            line = self._file.readline(proto.MAX_REPLY_BYTES + 1)
        except TimeoutError:
            raise DaemonGone("the portfwd daemon did not answer in time") from None
        except OSError as exc:
            raise DaemonGone(f"lost the portfwd daemon: {exc}") from None
        if not line.endswith(b"\n"):
            raise DaemonGone("lost the portfwd daemon: the connection ended")
        try:
            return proto.decode_line(line)
        except proto.ProtocolError as exc:
            raise DaemonGone(f"the daemon sent something unreadable: {exc}") from None

    # -- the operations (EngineAPI's names) --------------------------------------------------

    def call(self, op: ops.Op[R], **args: Any) -> R:
        """One operation of the table: its arguments encoded, its reply decoded."""
        return op.decode_result(self.request(op.name, **op.request_args(**args)))

    def status(self) -> dict[str, Any]:
        from portfwd.daemon import ops

        return self.call(ops.STATUS)

    def snapshot(self) -> list[ForwardSnapshot]:
        from portfwd.daemon import ops

        return self.call(ops.SNAPSHOT_ALL)

    def snapshot_records(self) -> list[dict[str, Any]]:
        """The forwards as the daemon sent them (`engine/serial.py`'s plain data), for a
        listing that need not import the engine's model (`portfwd ls`); ValueError for a
        reply of another shape."""
        records = self.request(SNAPSHOT_OP)
        if not isinstance(records, list) or not all(isinstance(r, dict) for r in records):
            raise ValueError("the daemon's snapshot is not a list of records")
        return records

    def get(self, forward_id: str) -> ForwardSnapshot:
        """The forward with this id; KeyError when there is none (as `EngineAPI.get`)."""
        for snap in self.snapshot():
            if snap.id == forward_id:
                return snap
        raise KeyError(forward_id)

    def logs(self, forward_id: str | None, limit: int | None = None) -> list[LogEntry]:
        from portfwd.daemon import ops

        limit = ops.MAX_LOG_LINES if limit is None else limit
        return self.call(ops.LOGS_OF, id=forward_id, limit=limit)

    def open_connections(self, forward_id: str) -> list[ConnectionInfo]:
        from portfwd.daemon import ops

        return self.call(ops.CONNECTIONS_OF, id=forward_id)

    def add(
        self, spec: ForwardSpec, *, start: bool = True, forward_id: str | None = None
    ) -> ForwardSnapshot:
        from portfwd.daemon import ops

        return self.call(ops.ADD, spec=spec, start=start, id=forward_id)

    def start(self, forward_id: str) -> ForwardSnapshot:
        from portfwd.daemon import ops

        return self.call(ops.START, id=forward_id)

    def stop(self, forward_id: str) -> ForwardSnapshot:
        from portfwd.daemon import ops

        return self.call(ops.STOP, id=forward_id)

    def restart(self, forward_id: str) -> ForwardSnapshot:
        from portfwd.daemon import ops

        return self.call(ops.RESTART, id=forward_id)

    def update(self, forward_id: str, spec: ForwardSpec) -> ForwardSnapshot:
        from portfwd.daemon import ops

        return self.call(ops.UPDATE, id=forward_id, spec=spec)

    def set_reconnect(self, forward_id: str, enabled: bool) -> ForwardSnapshot:
        from portfwd.daemon import ops

        return self.call(ops.SET_RECONNECT, id=forward_id, enabled=enabled)

    def set_http_log(self, forward_id: str, enabled: bool) -> ForwardSnapshot:
        from portfwd.daemon import ops

        return self.call(ops.SET_HTTP_LOG, id=forward_id, enabled=enabled)

    def pod_log(
        self, forward_id: str, container: str | None = None, after: int = 0, wait: float = 0
    ) -> PodLogPage:
        from portfwd.daemon import ops

        return self.call(
            ops.POD_LOG, id=forward_id, container=container, after=after, wait=int(wait)
        )

    def remove(self, forward_id: str) -> None:
        from portfwd.daemon import ops

        self.call(ops.REMOVE, id=forward_id)

    def shutdown(self) -> dict[str, Any]:
        """Ask the daemon to stop (it saves its session first); its answer."""
        from portfwd.daemon import ops

        return self.call(ops.SHUTDOWN)

    # -- the wire -----------------------------------------------------------------------------

    def request(self, op: str, **args: Any) -> Any:
        """A raw request (tests speak the protocol with it); front ends use the methods."""
        sent, self._ahead = self._ahead, None
        if sent is not None and sent[0] == op and not args:
            rid = sent[1]  # sent with the hello: its reply is on its way
        else:
            rid = next(self._ids)
            try:
                self._sock.sendall(proto.encode({"id": rid, "op": op, "args": args}))
            except OSError as exc:
                raise DaemonGone(f"lost the portfwd daemon: {exc}") from None
        while True:
            data = self._line()
            if data.get("id") == rid:
                return result(data)
            if data.get("id") is None and "error" in data:
                result(data)  # about the connection itself: raises

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._file.close()
            self._sock.close()
