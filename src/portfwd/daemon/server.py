"""The daemon: one Manager and its Session, served on a unix socket to the same user.

Ownership: the server owns the listening socket, one task per connected client (its reader)
plus that client's event pump and in-flight requests; `close()` cancels and awaits all of
them, saves the session, stops the forwards, removes the socket and lets go of the lock.

Nobody slows the engine down: events reach a client through its own bounded subscription
(a client that does not read gets a `lagged` event, then the snapshot again); replies are
written without waiting, and a client whose unread output passes
:data:`CLIENT_BUFFER_LIMIT` is disconnected. Requests of one client run concurrently (a slow
`start` does not hold up a `stop`), at most :data:`MAX_IN_FLIGHT` at once; a request whose
client went away still finishes (a forward half added helps nobody), its reply is dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import os
import stat
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from portfwd import __version__
from portfwd.daemon import ops
from portfwd.daemon import protocol as proto
from portfwd.daemon.companion import Companion
from portfwd.daemon.idle import IdlePolicy
from portfwd.daemon.lock import DaemonLock
from portfwd.daemon.paths import DaemonPaths, check_socket_path, ensure_private_dir
from portfwd.daemon.peer import peer_uid
from portfwd.engine.api import find
from portfwd.engine.events import LogLine
from portfwd.engine.manager import Manager
from portfwd.engine.model import ForwardSnapshot, LogKind
from portfwd.engine.serial import event_to_dict, log_to_dict, snapshot_to_dict
from portfwd.errors import InputError, PortfwdError
from portfwd.safetext import escape_controls
from portfwd.store.session import Session

log = logging.getLogger(__name__)
forward_log = logging.getLogger("portfwd.daemon.forwards")

HELLO_TIMEOUT = 10.0  # a connection that does not say hello in time is closed
CLIENT_BUFFER_LIMIT = 16 << 20  # unread bytes a client may leave queued before it is dropped
SUBSCRIPTION_SIZE = 10_000  # events queued per subscribed client before it lags


class _Client:
    """One connection: its writer, its subscription pump, its requests in flight."""

    def __init__(self, server: DaemonServer, writer: asyncio.StreamWriter, uid: int | None):
        self.server = server
        self.writer = writer
        self.uid = uid
        self.name = "?"
        self.pump: asyncio.Task[None] | None = None
        self.closed = False
        self.slots = asyncio.Semaphore(proto.MAX_IN_FLIGHT)

    def send(self, line: bytes) -> None:
        """Queue a line without waiting; a client that lets too much pile up is dropped."""
        if self.closed:
            return
        transport = self.writer.transport
        if transport.is_closing():
            self.closed = True
            return
        if transport.get_write_buffer_size() + len(line) > CLIENT_BUFFER_LIMIT:
            log.warning("client %s does not read its replies; disconnected", self.name)
            self.close()
            return
        self.writer.write(line)

    def close(self) -> None:
        self.closed = True
        if self.pump is not None:
            self.pump.cancel()
        self.writer.transport.abort()


class DaemonServer:
    def __init__(
        self,
        manager: Manager,
        session: Session | None,
        paths: DaemonPaths,
        *,
        max_clients: int = proto.MAX_CLIENTS,
        on_shutdown: Callable[[], None] | None = None,
        companions: Sequence[Companion] = (),
    ) -> None:
        self.manager = manager
        self.companions = list(companions)  # run on its engine (the proxy); see companion.py
        self.session = session
        self.paths = paths
        self.max_clients = max_clients
        self.started_at = time.time()
        self.lock = DaemonLock(paths)
        self.stopping = asyncio.Event()
        self._on_shutdown = on_shutdown
        self._server: asyncio.Server | None = None
        self._clients: set[_Client] = set()
        self._tasks: set[asyncio.Task[Any]] = set()  # requests and event pumps
        self._readers: set[asyncio.Task[Any]] = set()  # one per connection (asyncio's own)
        self._logger: asyncio.Task[None] | None = None
        self._uid = os.geteuid()
        self._idle: IdlePolicy[_Client] = IdlePolicy()  # who makes room when it is full

    # -- life -------------------------------------------------------------------------------

    async def start(self) -> None:
        """Take the lock, replace a stale socket, listen. AlreadyRunning if another daemon
        has the lock; PortfwdError if the session file is in use by a dashboard."""
        paths = self.paths
        ensure_private_dir(paths.directory)
        check_socket_path(paths.socket)
        await asyncio.to_thread(self.lock.acquire)
        try:
            if self.session is not None:
                holder = await self.session.claim()
                if holder is not None:
                    who = f" (pid {holder})" if holder not in ("", "?") else ""
                    raise PortfwdError(
                        f"a portfwd dashboard{who} is running the session"
                        f" {self.session.store.path}; quit it first (the daemon then restores"
                        " its forwards), or give the daemon another --state file"
                    )
            for companion in self.companions:  # before the socket: a failure is the start's
                await companion.start(self.manager)
            _remove_stale_socket(paths)
            self._server = await asyncio.start_unix_server(
                self._serve_client, path=str(paths.socket), limit=proto.MAX_REQUEST_BYTES + 1
            )
            os.chmod(paths.socket, 0o600)  # the 0700 directory already keeps others out
        except BaseException:
            for companion in reversed(self.companions):
                await companion.close()
            if self.session is not None:
                await self.session.close(flush=False)
            self.lock.release()
            raise
        self._logger = asyncio.create_task(self._log_forwards(), name="daemon-forward-log")
        log.info(
            "portfwd %s daemon (pid %d) listening on %s", __version__, os.getpid(), paths.socket
        )

    async def restore(self) -> None:
        """Bring the session back (after `start`: clients may already watch it happen)."""
        if self.session is not None:
            await self.session.start()

    async def close(self) -> None:
        """Stop serving, save the session, stop every forward, remove the socket. Idempotent."""
        self.stopping.set()
        server, self._server = self._server, None
        if server is not None:
            server.close()
        for client in list(self._clients):
            client.close()  # its reader sees the end of its stream and returns
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks)
        readers = list(self._readers)
        if readers:
            # Not cancelled: asyncio's stream server reports a cancelled handler as an error.
            _, late = await asyncio.wait(readers, timeout=5)
            for task in late:
                task.cancel()
        for companion in reversed(self.companions):
            await companion.close()  # its connections end before the engine stops
        if self.session is not None:
            await self.session.close(flush=True)  # before the forwards stop: they stay wanted
        await self.manager.shutdown()
        if self._logger is not None:
            self._logger.cancel()
            await asyncio.gather(self._logger, return_exceptions=True)
            self._logger = None
        if server is not None:
            with contextlib.suppress(OSError):
                os.unlink(self.paths.socket)
            await server.wait_closed()
        self.lock.release()

    def status(self) -> dict[str, Any]:
        states = self.manager.state_counts()
        return {
            "version": __version__,
            "protocol": proto.PROTOCOL_VERSION,
            "pid": os.getpid(),
            "started_at": self.started_at,
            "socket": str(self.paths.socket),
            "log": str(self.paths.log),
            "session": str(self.session.store.path) if self.session is not None else None,
            "forwards": sum(states.values()),
            "states": states,
            "clients": len(self._clients),
            # What `ls` and the dashboard show: the kubeconfig a spec without one uses, and
            # what the session load had to say (entries left out of state.yaml).
            "kubeconfig": self.manager.clients.kubeconfig,
            "warnings": list(self.session.loaded.warnings) if self.session is not None else [],
            **{k: v for c in self.companions for k, v in c.status().items()},
        }

    async def _log_forwards(self) -> None:
        """What happened while nobody watched: every forward's log lines, in the daemon log."""
        subscription = self.manager.subscribe(maxsize=SUBSCRIPTION_SIZE)
        try:
            async for event in subscription:
                if isinstance(event, LogLine) and event.entry.kind is not LogKind.CONNECTION:
                    entry = event.entry  # (one line per connection would drown the rest)
                    who = "portfwd"
                    if event.forward_id is not None:
                        try:
                            snap = self.manager.get(event.forward_id)
                        except KeyError:
                            who = event.forward_id
                        else:
                            who = snap.spec.name or snap.id
                    forward_log.log(int(entry.level), "%s: %s", who, entry.message)
        finally:
            subscription.close()

    # -- clients ----------------------------------------------------------------------------

    def _own(self, task: asyncio.Task[Any]) -> None:
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _serve_client(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._readers.add(task)
            task.add_done_callback(self._readers.discard)
        sock = writer.get_extra_info("socket")
        uid = peer_uid(sock) if sock is not None else None  # asyncio's TransportSocket
        client = _Client(self, writer, uid)
        try:
            if uid is not None and uid != self._uid:
                log.warning("refused a connection from uid %d", uid)
                client.send(
                    proto.error(
                        None,
                        proto.REFUSED,
                        f"this portfwd daemon belongs to uid {self._uid}; uid {uid} may not use it",
                    )
                )
                return
            if len(self._clients) >= self.max_clients and not self._make_room():
                client.send(
                    proto.error(
                        None,
                        proto.REFUSED,
                        f"the daemon serves at most {self.max_clients} clients at once; try again",
                    )
                )
                return
            self._clients.add(client)
            self._idle.seen(client)
            if not await self._hello(reader, client):
                return
            await self._requests(reader, client)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass  # the client went away
        finally:
            self._clients.discard(client)
            self._idle.left(client)
            with contextlib.suppress(Exception):
                if not writer.transport.is_closing():
                    await asyncio.wait_for(writer.drain(), 1.0)
            client.close()

    def _make_room(self) -> bool:
        """Close the connection idle the longest (see `daemon/idle.py`); False if none is."""
        victim = self._idle.victim(self._clients, watching=lambda c: c.pump is not None)
        if victim is None:
            return False
        log.info("closed idle client %s: the daemon is full", victim.name)
        victim.send(
            proto.error(
                None,
                proto.REFUSED,
                f"closed: idle while the daemon served {self.max_clients} connections"
                " and another one needed the room",
            )
        )
        self._clients.discard(victim)
        victim.closed = True
        victim.writer.close()  # (not abort: the line above still goes out)
        return True

    async def _read(self, reader: asyncio.StreamReader, client: _Client) -> proto.Request | None:
        """The next request; None at EOF or after a protocol error was answered."""
        try:
            line = await reader.readuntil(b"\n")
        except asyncio.IncompleteReadError as exc:
            if exc.partial.strip():
                client.send(
                    proto.error(None, proto.BAD_REQUEST, "a request must end with a newline")
                )
            return None
        except asyncio.LimitOverrunError:
            client.send(
                proto.error(
                    None,
                    proto.BAD_REQUEST,
                    f"request longer than {proto.MAX_REQUEST_BYTES} bytes; connection closed",
                )
            )
            return None
        try:
            return proto.parse_request(line)
        except proto.ProtocolError as exc:
            rid = _id_of(line)
            client.send(proto.error(rid, exc.kind, f"{exc}; connection closed"))
            return None

    async def _hello(self, reader: asyncio.StreamReader, client: _Client) -> bool:
        try:
            async with asyncio.timeout(HELLO_TIMEOUT):
                request = await self._read(reader, client)
        except TimeoutError:
            client.send(proto.error(None, proto.BAD_REQUEST, "no hello within 10 s"))
            return False
        if request is None:
            return False
        if request.op != proto.HELLO:
            client.send(proto.error(request.id, proto.BAD_REQUEST, "say hello first"))
            return False
        version = request.args.get("version")
        if version != proto.PROTOCOL_VERSION:
            client.send(
                proto.error(
                    request.id,
                    proto.VERSION,
                    proto.version_mismatch(version, "daemon"),
                    version=proto.PROTOCOL_VERSION,
                )
            )
            return False
        name = request.args.get("client")
        client.name = escape_controls(str(name))[:80] if name is not None else "?"
        client.send(proto.reply(request.id, self.status()))
        self._idle.seen(client)
        return True

    async def _requests(self, reader: asyncio.StreamReader, client: _Client) -> None:
        while not client.closed:
            await client.slots.acquire()  # at most MAX_IN_FLIGHT: then this socket waits
            request = await self._read(reader, client)
            if request is None:
                client.slots.release()
                return
            if request.op == proto.HELLO:
                client.send(proto.error(request.id, proto.BAD_REQUEST, "hello was said already"))
                client.slots.release()
                return
            self._idle.began(client)
            task = asyncio.create_task(self._run(client, request), name=f"daemon-{request.op}")
            self._own(task)

    async def _run(self, client: _Client, request: proto.Request) -> None:
        try:
            result = await self._dispatch(client, request)
        except asyncio.CancelledError:
            raise
        except _BadArgs as exc:
            client.send(proto.error(request.id, proto.INPUT, str(exc)))
        except KeyError as exc:
            key = exc.args[0] if exc.args else "?"
            client.send(
                proto.error(
                    request.id,
                    proto.NOT_FOUND,
                    f"no forward has the name or id {escape_controls(str(key))!r};"
                    " `portfwd ls` lists them",
                )
            )
        except (InputError, ValueError) as exc:
            client.send(proto.error(request.id, proto.INPUT, escape_controls(str(exc))))
        except PortfwdError as exc:
            client.send(proto.error(request.id, proto.FAILED, escape_controls(str(exc))))
        except Exception as exc:
            log.exception("request %s of client %s failed", request.op, client.name)
            client.send(
                proto.error(
                    request.id,
                    proto.INTERNAL,
                    f"the daemon failed: {type(exc).__name__} (see {self.paths.log})",
                )
            )
        else:
            try:
                client.send(proto.reply(request.id, result))
            except ValueError:  # not JSON-able: a bug
                log.exception("reply to %s is not JSON", request.op)
                client.send(proto.error(request.id, proto.INTERNAL, "unserialisable reply"))
        finally:
            client.slots.release()
            self._idle.ended(client)
        if request.op == ops.SHUTDOWN.name:
            self.stopping.set()
            if self._on_shutdown is not None:
                self._on_shutdown()

    # -- operations -------------------------------------------------------------------------

    async def _dispatch(self, client: _Client, request: proto.Request) -> Any:
        """Serve a request from the operation table: its arguments checked by the table's
        codec, the engine method it names called (a forward named by its id or its name),
        the result encoded by the table's codec."""
        op = ops.TABLE[request.op]  # parse_request let only the table's names through
        try:
            args = op.decode_args(request.args)
        except ops.BadArgs as exc:
            raise _BadArgs(str(exc)) from None
        if op.method is None:
            return await self._daemon_ops[op.name](self, client, args)
        manager = self.manager
        kwargs = {a.param: args[a.name] for a in op.args if a.param is not None}
        fid = kwargs.get("forward_id")
        if fid is not None and op is not ops.ADD:
            fid = kwargs["forward_id"] = find(manager, fid).id
        value = getattr(manager, op.method)(**kwargs)
        if inspect.isawaitable(value):
            value = await value
        if op is ops.ADD:
            fid = value
        if op in _CHANGES and fid is not None:
            await self._saved(fid)  # an ok reply means the change is in the session file
        if op is ops.LOGS_OF:
            limit = args["limit"]
            value = value[len(value) - limit :] if limit else []
        elif op is ops.REMOVE:
            value = {"removed": fid}
        elif op.result is ops.SNAPSHOT and not isinstance(value, ForwardSnapshot):
            assert fid is not None
            value = manager.get(fid)  # stop, update, set_reconnect: the forward as it is now
        return op.result.to_wire(value)

    async def _saved(self, fid: str) -> None:
        """An ok reply means the change is in the session file (it survives a kill -9)."""
        if self.session is not None:
            await self.session.persist(fid)

    async def _status(self, client: _Client, args: dict[str, Any]) -> Any:
        return self.status()

    async def _shutdown(self, client: _Client, args: dict[str, Any]) -> Any:
        return {"stopping": True, "forwards": len(self.manager.snapshot())}

    async def _subscribe(self, client: _Client, args: dict[str, Any]) -> Any:
        """Start the client's event stream; the reply is the snapshot (and recent log lines)
        taken after subscribing, so nothing falls between the two."""
        lines = args["logs"]
        if client.pump is None:
            subscription = self.manager.subscribe(maxsize=SUBSCRIPTION_SIZE)
            client.pump = asyncio.create_task(self._pump(client, subscription))
            self._own(client.pump)
        snaps = self.manager.snapshot()
        result: dict[str, Any] = {"snapshot": [snapshot_to_dict(s) for s in snaps]}
        if lines:
            logs = {"": [log_to_dict(e) for e in self.manager.logs(None)[-lines:]]}
            for snap in snaps:
                logs[snap.id] = [log_to_dict(e) for e in self.manager.logs(snap.id)[-lines:]]
            result["logs"] = logs
        return result

    async def _unsubscribe(self, client: _Client, args: dict[str, Any]) -> Any:
        pump, client.pump = client.pump, None
        if pump is not None:
            pump.cancel()
        return {}

    async def _pump(self, client: _Client, subscription: Any) -> None:
        """The client's events, as fast as it reads them: when its socket's buffer is full
        this waits (its subscription then lags, the engine never does)."""
        try:
            async for event in subscription:
                client.send(proto.encode({"event": event_to_dict(event)}))
                if client.closed:
                    return
                await client.writer.drain()
        except ConnectionError:
            pass
        finally:
            subscription.close()

    # The daemon's own operations (the table's entries without an engine method).
    _daemon_ops: dict[str, Callable[[DaemonServer, _Client, dict[str, Any]], Awaitable[Any]]] = {
        ops.STATUS.name: _status,
        ops.SHUTDOWN.name: _shutdown,
        ops.SUBSCRIBE.name: _subscribe,
        ops.UNSUBSCRIBE.name: _unsubscribe,
    }


# The operations that change what the session file holds: replied to after the write.
_CHANGES = frozenset(
    {
        ops.ADD,
        ops.START,
        ops.STOP,
        ops.RESTART,
        ops.UPDATE,
        ops.SET_RECONNECT,
        ops.SET_HTTP_LOG,
        ops.REMOVE,
    }
)


class _BadArgs(Exception):
    pass


def _id_of(line: bytes) -> int | None:
    """The id of a request that broke the protocol, when it has one (for the error reply)."""
    try:
        data = proto.decode_line(line)
    except proto.ProtocolError:
        return None
    rid = data.get("id")
    return rid if isinstance(rid, int) and not isinstance(rid, bool) else None


def _remove_stale_socket(paths: DaemonPaths) -> None:
    """We hold the lock, so a socket file there is a dead daemon's: replace it (but never
    remove something that is not a socket of ours)."""
    try:
        st = os.lstat(paths.socket)
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(st.st_mode) or st.st_uid != os.geteuid():
        raise PortfwdError(
            f"{paths.socket} exists and is not a socket of yours; remove it, then start again"
        )
    log.info("replacing the stale socket %s (its daemon is gone)", paths.socket)
    os.unlink(paths.socket)
