"""`portfwd daemon`: run it (foreground, for service managers), detach it, stop it, ask it.

Foreground by default: systemd (`Type=notify`: READY=1 once the socket listens) and launchd
keep it running. `--detach` starts the same command in its own session, waits until it
listens (or prints why it could not) and returns. SIGTERM and SIGINT stop it the way
`portfwd daemon stop` does: the session is saved with the running forwards marked running,
then every forward is stopped, so the next start brings them back.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import select
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from portfwd.daemon import ops
from portfwd.daemon.client import DaemonClient
from portfwd.daemon.companion import Companion
from portfwd.daemon.lock import AlreadyRunning, lock_holder
from portfwd.daemon.paths import DaemonPaths, daemon_paths
from portfwd.daemon.replies import NotRunning
from portfwd.daemon.server import DaemonServer
from portfwd.errors import PortfwdError
from portfwd.eventloop import release_signals, run, stop_on_signals
from portfwd.humanize import human_duration
from portfwd.logfile import BackgroundLog
from portfwd.safetext import escape_controls
from portfwd.selfexec import child_environment, portfwd_command

log = logging.getLogger(__name__)

R = TypeVar("R")

READY_FD_ENV = "PORTFWD_READY_FD"  # --detach: the child reports its Started line here
DETACH_TIMEOUT = 30.0
STOP_TIMEOUT = 60.0  # stopping saves the session and closes every forward's connections
LOG_MAX_BYTES = 5_000_000
LOG_BACKUPS = 3


def run_daemon(
    *,
    kubeconfig: str | None,
    state_file: Path | None,
    ping_interval: float,
    detach: bool,
    paths: DaemonPaths | None = None,
    companions: Sequence[Companion] = (),
    detach_args: Sequence[str] = (),
) -> int:
    """`companions`: run inside it on its engine (see companion.py); `detach_args`: the
    options that make them, for the detached child's command line."""
    from portfwd.configdir import default_state_file
    from portfwd.store.state import check_session_path

    paths = paths or daemon_paths()
    state = state_file or default_state_file()
    check_session_path(state)
    if detach:
        return _detach(
            kubeconfig=kubeconfig,
            state_file=state_file,
            ping_interval=ping_interval,
            extra=detach_args,
        )
    logfile = BackgroundLog(
        paths.log, level=logging.INFO, max_bytes=LOG_MAX_BYTES, backups=LOG_BACKUPS
    )
    logfile.install()
    ready_fd = _ready_fd()
    try:
        return run(_serve(paths, kubeconfig, state, ping_interval, ready_fd, companions))
    except PortfwdError as exc:
        _report_ready(ready_fd, Started(error=str(exc), running=isinstance(exc, AlreadyRunning)))
        raise
    finally:
        logfile.close()


@dataclass(frozen=True)
class Started:
    """What a detached daemon reported on its ready pipe: one JSON object on one line,
    `{"ready": PID}` or `{"error": MESSAGE, "running": BOOL}` (`running`: another daemon
    holds the lock, so one runs all the same)."""

    pid: int | None = None  # set once it listens
    error: str = ""
    running: bool = False  # not started because another daemon already runs

    @property
    def ready(self) -> bool:
        return self.pid is not None

    def line(self) -> str:
        data: dict[str, Any] = (
            {"ready": self.pid}
            if self.pid is not None
            else {"error": escape_controls(self.error), "running": self.running}
        )
        return json.dumps(data)

    @classmethod
    def parse(cls, line: str) -> Started:
        """The child's line; anything else is an error naming what came."""
        try:
            data = json.loads(line)
        except ValueError:
            data = None
        if isinstance(data, dict):
            pid = data.get("ready")
            if isinstance(pid, int) and not isinstance(pid, bool):
                return cls(pid=pid)
            error = data.get("error")
            if isinstance(error, str):
                return cls(error=escape_controls(error), running=data.get("running") is True)
        return cls(error=f"the daemon said something unexpected: {escape_controls(line[:200])}")


def _ready_fd() -> int | None:
    raw = os.environ.pop(READY_FD_ENV, "")
    return int(raw) if raw.isdigit() else None


def _report_ready(fd: int | None, started: Started) -> None:
    if fd is None:
        return
    with contextlib.suppress(OSError):
        os.write(fd, (started.line() + "\n").encode())
        os.close(fd)


def _sd_notify(message: str) -> None:
    """Tell systemd (Type=notify) we are ready; nothing when not run by systemd."""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return
    if address.startswith("@"):
        address = "\0" + address[1:]  # an abstract socket
    with contextlib.suppress(OSError), socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.sendto(message.encode(), address)


async def _serve(
    paths: DaemonPaths,
    kubeconfig: str | None,
    state: Path,
    ping_interval: float,
    ready_fd: int | None,
    companions: Sequence[Companion] = (),
) -> int:
    from portfwd.engine.manager import Manager
    from portfwd.store.session import Session
    from portfwd.store.state import StateStore

    stop = asyncio.Event()
    # SIGHUP: the terminal it was started from closed; a daemon goes on.
    handled = stop_on_signals(stop, ignore=(signal.SIGHUP,))
    store = StateStore(state)
    loaded = await asyncio.to_thread(store.load)
    manager = Manager(kubeconfig=kubeconfig, ping_interval=ping_interval)
    session = Session(manager, store, loaded, restart=True)
    session.on_error = lambda message: log.error("%s", message)
    server = DaemonServer(manager, session, paths, on_shutdown=stop.set, companions=companions)
    try:
        try:
            await server.start()
        except BaseException:
            await manager.shutdown()
            raise
        for warning in loaded.warnings:
            log.warning("%s", warning)
        _report_ready(ready_fd, Started(pid=os.getpid()))
        _sd_notify("READY=1")
        restoring = asyncio.create_task(server.restore(), name="daemon-restore")
        try:
            await stop.wait()
        finally:
            _sd_notify("STOPPING=1")
            log.info("stopping: saving the session, then stopping every forward")
            restoring.cancel()
            await asyncio.gather(restoring, return_exceptions=True)
            await server.close()
        log.info("stopped")
        return 0
    finally:
        release_signals(handled)


def _detach(
    *,
    kubeconfig: str | None,
    state_file: Path | None,
    ping_interval: float,
    extra: Sequence[str] = (),
) -> int:
    """Start `portfwd daemon` in its own session; return once it listens."""
    pid, started = start_detached(
        kubeconfig=kubeconfig, state_file=state_file, ping_interval=ping_interval, extra=extra
    )
    if started.ready:
        paths = daemon_paths()
        print(f"portfwd daemon started (pid {pid}); socket {paths.socket}, log {paths.log}")
        return 0
    raise PortfwdError(started.error or "the daemon did not start")


def start_detached(
    *,
    kubeconfig: str | None,
    state_file: Path | None,
    ping_interval: float | None = None,
    extra: Sequence[str] = (),
) -> tuple[int, Started]:
    """`portfwd daemon` with these options, detached (see `spawn`)."""
    command = [*portfwd_command("daemon"), *extra]
    if kubeconfig:
        command += ["--kubeconfig", os.path.abspath(kubeconfig)]
    if state_file:
        command += ["--state", os.path.abspath(state_file)]
    if ping_interval is not None:
        command += ["--ping-interval", f"{ping_interval:g}"]
    return spawn(command)


def ensure_started(
    *, kubeconfig: str | None, state_file: Path | None, ping_interval: float | None = None
) -> None:
    """A daemon runs once this returns (this one started it, or another did meanwhile);
    else the reason it did not start, as a PortfwdError."""
    _, started = start_detached(
        kubeconfig=kubeconfig, state_file=state_file, ping_interval=ping_interval
    )
    if not started.ready and not started.running:
        raise PortfwdError(started.error or "the daemon did not start")


def start_with_ready_pipe(
    command: list[str], timeout: float, *, stdin: int, cwd: str | None = None
) -> tuple[subprocess.Popen[bytes], str]:
    """Start `command` in its own session (no terminal's signals) with the ready pipe's
    write end passed on as READY_FD_ENV; the process and the line it reported ("" when
    it closed the pipe or said nothing within `timeout`)."""
    read_end, write_end = os.pipe()
    env = child_environment(os.environ)
    env[READY_FD_ENV] = str(write_end)
    try:
        proc = subprocess.Popen(
            command,
            stdin=stdin,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
            pass_fds=(write_end,),
            env=env,
            cwd=cwd,
            close_fds=True,
        )
    finally:
        os.close(write_end)
    try:
        return proc, _read_line(read_end, timeout)
    finally:
        os.close(read_end)


def spawn(command: list[str], timeout: float = DETACH_TIMEOUT) -> tuple[int, Started]:
    """Run `command` detached (own session, no terminal, cwd /); its pid and what it
    reported on the ready pipe (a Started; an error when it died or said nothing in time)."""
    proc, answer = start_with_ready_pipe(command, timeout, stdin=subprocess.DEVNULL, cwd="/")
    if answer:
        return proc.pid, Started.parse(answer)
    if proc.poll() is not None:
        return proc.pid, Started(
            error=f"the daemon exited with code {proc.returncode} before it was ready"
        )
    return proc.pid, Started(
        error=f"the daemon did not report ready within {timeout:g} s (pid {proc.pid})"
    )


def _read_line(fd: int, timeout: float) -> str:
    deadline = time.monotonic() + timeout
    data = b""
    while b"\n" not in data:
        left = deadline - time.monotonic()
        if left <= 0:
            break
        readable, _, _ = select.select([fd], [], [], left)
        if not readable:
            break
        chunk = os.read(fd, 4096)
        if not chunk:
            break
        data += chunk
    return data.decode("utf-8", "replace").strip()


# -- stop / status ----------------------------------------------------------------------------


async def _request(op: ops.Op[R], paths: DaemonPaths) -> R:
    client = await DaemonClient.connect(paths, client=f"daemon {op.name}")
    try:
        return await client.call(op)
    finally:
        await client.close()


def stop_daemon(paths: DaemonPaths | None = None, *, echo: Callable[[str], None] = print) -> int:
    paths = paths or daemon_paths()
    try:
        answer = run(_request(ops.SHUTDOWN, paths))
    except NotRunning:
        if lock_holder(paths) is None:
            echo("no portfwd daemon is running")
            return 0
        raise
    pid = lock_holder(paths)
    deadline = time.monotonic() + STOP_TIMEOUT
    while lock_holder(paths) is not None and time.monotonic() < deadline:
        time.sleep(0.05)
    if lock_holder(paths) is not None:
        raise PortfwdError(f"the daemon (pid {pid}) is still stopping after {STOP_TIMEOUT:g} s")
    count = answer.get("forwards", 0) if isinstance(answer, dict) else 0
    echo(f"portfwd daemon stopped; its session ({count} forward(s)) is saved for the next start")
    return 0


def daemon_status(
    paths: DaemonPaths | None = None, *, as_json: bool = False, echo: Callable[[str], None] = print
) -> bool:
    """Print the daemon's status; whether one runs (`portfwd daemon status` exits 3 when
    not, as LSB's "not running")."""
    paths = paths or daemon_paths()
    try:
        status = run(_request(ops.STATUS, paths))
    except NotRunning:
        holder = lock_holder(paths)
        if holder is not None:
            raise PortfwdError(
                f"a portfwd daemon (pid {holder}) holds {paths.lock} but does not answer on"
                f" {paths.socket}"
            ) from None
        if as_json:
            echo(json.dumps({"running": False, "socket": str(paths.socket)}))
        else:
            echo(f"portfwd daemon: not running (socket {paths.socket})")
        return False
    if as_json:
        echo(json.dumps({"running": True, **status}, sort_keys=True))
        return True
    states = status.get("states") or {}
    counts = ", ".join(f"{n} {state}" for state, n in sorted(states.items())) or "none"
    up = human_duration(time.time() - float(status.get("started_at") or time.time()))
    lines = [
        f"portfwd daemon: running (pid {status.get('pid')}, portfwd {status.get('version')},"
        f" protocol {status.get('protocol')}), up {up}",
        f"  forwards: {status.get('forwards')} ({counts})",
        f"  clients:  {status.get('clients')}",
        f"  socket:   {status.get('socket')}",
        f"  session:  {status.get('session')}",
        f"  log:      {status.get('log')}",
    ]
    proxy = status.get("proxy")
    if isinstance(proxy, dict):
        lines.append(f"  proxy:    {proxy_text(proxy)}")
    metrics = status.get("metrics")
    if isinstance(metrics, dict):
        shown = metrics.get("url") or f"not served: {metrics.get('error')}"
        lines.append(f"  metrics:  {shown}")
    for line in lines:
        echo(escape_controls(line))
    return True


def proxy_text(proxy: dict[str, Any]) -> str:
    """The daemon's proxy as status and the dashboard header say it (from its status)."""
    text = f"{proxy.get('listen')} (SOCKS5 and HTTP"
    contexts = proxy.get("contexts")
    if isinstance(contexts, list) and contexts:
        text += "; " + ", ".join(str(c) for c in contexts)
    text += ")"
    if proxy.get("pac"):
        text += f", PAC {proxy.get('pac')}"
    return text
