"""The dashboard's own engine in a process of its own: a private daemon, gone with its parent.

Without a daemon, the dashboard used to run its forwards on an engine thread
(`portfwd.engine.host`); the thread has its own event loop but shares the GIL with the screen,
and with 50 forwards echoing beside the dashboard the echo p99 stayed 2-3x headless's and a
quarter of the echoes were lost. The same dashboard attached to a daemon matched headless
(bench/dashboard_echo.py; docs/performance.md). So the in-process dashboard now starts a
daemon of its own that serves no one else:

- its socket, lock and log sit in a fresh 0700 directory (no other front end finds it, and it
  does not take the per-user daemon's lock); it keeps no session (the dashboard's `Session`
  saves the forwards, as before, through the engine API);
- it reads its stdin, a pipe from the dashboard: when the dashboard exits, even killed, the
  pipe ends and the engine stops every forward, removes its directory and exits;
- it runs in a session of its own, so the terminal's Ctrl-C reaches only the dashboard, which
  stops it in order.

`PrivateEngine` is the dashboard's side: a `RemoteEngine` on that socket that owns the child
process. `PORTFWD_ENGINE=thread` keeps the engine thread (for measuring one against the other).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from portfwd.daemon import ops
from portfwd.daemon.client import RemoteEngine
from portfwd.daemon.paths import LOCK_NAME, SOCKET_NAME, DaemonPaths
from portfwd.daemon.service import (
    Started,
    _ready_fd,
    _report_ready,
    start_with_ready_pipe,
)
from portfwd.engine.model import ConnectionInfo
from portfwd.errors import PortfwdError
from portfwd.selfexec import portfwd_command

CHILD_ARG = "__engine"  # `portfwd __engine DIR ...`: the child's command line (not for users)
ENGINE_ENV = "PORTFWD_ENGINE"  # "thread": the engine thread instead of a process
START_TIMEOUT = 30.0
STOP_TIMEOUT = 60.0  # stopping closes every forward's connections


def wanted(environ: dict[str, str] | None = None) -> bool:
    """Whether the dashboard should run its engine in a process (the default)."""
    env = os.environ if environ is None else environ
    return env.get(ENGINE_ENV, "").strip().lower() != "thread"


def _paths(directory: Path) -> DaemonPaths:
    return DaemonPaths(
        directory=directory,
        socket=directory / SOCKET_NAME,
        lock=directory / LOCK_NAME,
        log=directory / "engine.log",
    )


# -- the child ------------------------------------------------------------------------------


def child_main(args: list[str]) -> int:
    """`portfwd __engine DIR [--kubeconfig FILE] [--ping-interval S]`, started by the
    dashboard (see `PrivateEngine.open`)."""
    from portfwd.eventloop import run

    directory = Path(args[0])
    kubeconfig: str | None = None
    ping_interval = 30.0
    rest = args[1:]
    while rest:
        flag, value, rest = rest[0], rest[1], rest[2:]
        if flag == "--kubeconfig":
            kubeconfig = value
        elif flag == "--ping-interval":
            ping_interval = float(value)
    ready_fd = _ready_fd()
    try:
        return run(_serve(_paths(directory), kubeconfig, ping_interval, ready_fd))
    except PortfwdError as exc:
        _report_ready(ready_fd, Started(error=str(exc)))
        return 1


async def _serve(
    paths: DaemonPaths, kubeconfig: str | None, ping_interval: float, ready_fd: int | None
) -> int:
    from portfwd.daemon.server import DaemonServer
    from portfwd.engine.manager import Manager

    stop = asyncio.Event()
    manager = Manager(kubeconfig=kubeconfig, ping_interval=ping_interval)
    server = DaemonServer(manager, None, paths, on_shutdown=stop.set)
    try:
        await server.start()
    except BaseException:
        await manager.shutdown()
        raise
    loop = asyncio.get_running_loop()

    def parent_said() -> None:
        try:
            data = os.read(0, 4096)
        except OSError:
            data = b""
        if not data:  # the dashboard is gone (or closed the pipe to say so)
            loop.remove_reader(0)
            stop.set()

    loop.add_reader(0, parent_said)
    _report_ready(ready_fd, Started(pid=os.getpid()))
    try:
        await stop.wait()
    finally:
        with contextlib.suppress(ValueError, OSError):
            loop.remove_reader(0)
        await server.close()
        # Its directory is its own: gone with it, even when the dashboard was killed.
        await asyncio.to_thread(shutil.rmtree, paths.directory, True)
    return 0


# -- the dashboard's side -------------------------------------------------------------------


def _prepare(kubeconfig: str | None, ping_interval: float) -> tuple[Path, list[str]]:
    """A fresh private directory (mkdtemp: 0700) and the child's command line."""
    base = os.environ.get("XDG_RUNTIME_DIR") or tempfile.gettempdir()
    if not os.path.isdir(base):
        base = tempfile.gettempdir()
    directory = Path(tempfile.mkdtemp(prefix="portfwd-engine-", dir=base))
    command = portfwd_command(CHILD_ARG, str(directory))
    if kubeconfig:
        command += ["--kubeconfig", os.path.abspath(kubeconfig)]
    command += ["--ping-interval", f"{ping_interval:g}"]
    return directory, command


def _spawn(command: list[str]) -> tuple[subprocess.Popen[bytes], Started]:
    # Its stdin is the dashboard's lifeline (closed: the engine stops); its own session,
    # so the terminal's signals are the dashboard's alone.
    proc, answer = start_with_ready_pipe(command, START_TIMEOUT, stdin=subprocess.PIPE)
    if answer:
        return proc, Started.parse(answer)
    try:
        code: int | None = proc.wait(5)  # it closed the pipe: it is exiting, or hung
    except subprocess.TimeoutExpired:
        code = None
    why = f"exited with code {code}" if code is not None else "did not report ready in time"
    return proc, Started(error=f"the dashboard's engine process {why}")


def _end(proc: subprocess.Popen[bytes], timeout: float) -> None:
    """Close its stdin (it stops), wait, kill if it does not."""
    if proc.stdin is not None:
        with contextlib.suppress(OSError):
            proc.stdin.close()
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


class PrivateEngine(RemoteEngine):
    """The engine in a child process of the dashboard (see the module docstring)."""

    _proc: subprocess.Popen[bytes] | None = None
    _directory: Path | None = None
    _fetching: asyncio.Task[Any] | None = None
    _closed = False

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @classmethod
    async def open(cls, *, kubeconfig: str | None, ping_interval: float) -> PrivateEngine:
        """Start the child, wait until it listens, attach. PortfwdError if it cannot start."""
        directory, command = await asyncio.to_thread(_prepare, kubeconfig, ping_interval)
        proc: subprocess.Popen[bytes] | None = None
        try:
            proc, started = await asyncio.to_thread(_spawn, command)
            if not started.ready:
                raise PortfwdError(started.error or "the dashboard's engine process did not start")
            engine = await cls.attach(_paths(directory), client="dashboard")
        except BaseException:
            if proc is not None:
                await asyncio.to_thread(_end, proc, 10.0)
            shutil.rmtree(directory, ignore_errors=True)
            raise
        engine._proc, engine._directory = proc, directory
        return engine

    def open_connections(self, forward_id: str) -> list[ConnectionInfo]:
        """The list fetched last (the child does not stream them); asking starts a fresh
        fetch, so a view that refreshes sees it one refresh later."""
        if forward_id not in self._mirror.forwards:
            raise KeyError(forward_id)
        if not self._closed and (self._fetching is None or self._fetching.done()):
            self._fetching = asyncio.create_task(self._fetch_quietly(forward_id))
        return super().open_connections(forward_id)

    async def _fetch_quietly(self, forward_id: str) -> None:
        with contextlib.suppress(PortfwdError, KeyError):
            await self.fetch_connections(forward_id)

    async def shutdown(self) -> None:
        """Stop every forward (the child's listeners close), then the child itself."""
        if self._closed:
            return
        self._closed = True
        if self._fetching is not None:
            self._fetching.cancel()
            await asyncio.gather(self._fetching, return_exceptions=True)
        if self.lost is None:
            with contextlib.suppress(PortfwdError):
                await self.client.call(ops.SHUTDOWN)
        await super().shutdown()
        if self._proc is not None:
            await asyncio.to_thread(_end, self._proc, STOP_TIMEOUT)
        if self._directory is not None:
            shutil.rmtree(self._directory, ignore_errors=True)
