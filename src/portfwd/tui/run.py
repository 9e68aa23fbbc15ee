"""Start the dashboard: load the session, build the engine, run the app, always clean up.

Whatever happens inside the app, the terminal is restored (Textual does that when the app
exits) and every forward is stopped here in `finally`. An unexpected exception is written to a
log file whose path is printed, so a crash report is one file away.
"""

from __future__ import annotations

import asyncio
import logging
import logging.handlers
import os
import sys
import tempfile
import time
import traceback
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from portfwd.configdir import default_state_file
from portfwd.engine.model import ForwardSpec
from portfwd.errors import PortfwdError
from portfwd.eventloop import run
from portfwd.logfile import BackgroundLog
from portfwd.safetext import escape_lines
from portfwd.store.session import Session
from portfwd.store.state import StateStore, check_session_path


def run_tui(
    *,
    kubeconfig: str | None,
    context: str | None,
    namespace: str | None,
    state_file: Path | None,
    restore: bool,
    ping_interval: float = 30.0,
    protocol: str = "auto",
    use_daemon: bool = False,
) -> int:
    path = state_file or default_state_file()
    check_session_path(path)  # before anything (the log file) is written next to it
    return guarded(
        path.parent,
        lambda: launch(
            kubeconfig=kubeconfig,
            context=context,
            namespace=namespace,
            state_file=path,
            restore=restore,
            spec_kubeconfig=kubeconfig,
            ping_interval=ping_interval,
            protocol=protocol,
            daemon="start" if use_daemon else "attach",
            state_given=state_file is not None,
        ),
    )


def guarded(log_dir: Path, main: Callable[[], Awaitable[int]]) -> int:
    """Run `main` on a fresh event loop; an unexpected exception becomes a crash log."""

    async def runner() -> int:
        return await main()

    handler = _file_logging(log_dir)

    try:
        return run(runner())
    except (PortfwdError, KeyboardInterrupt):
        raise
    except Exception as exc:
        return report_crash(log_dir, "".join(traceback.format_exception(exc)))
    finally:
        if handler is not None:
            handler.close()


def _file_logging(log_dir: Path) -> BackgroundLog | None:
    """Warnings go to a small rotating file: stderr belongs to the full-screen app."""
    try:
        handler = BackgroundLog(log_dir / "portfwd.log", level=logging.WARNING)
    except OSError:
        return None
    handler.install()
    return handler


def report_crash(log_dir: Path, details: str) -> int:
    """Write the traceback to a file and tell the user where it is. Returns exit code 1.

    The report quotes whatever the exception held (API text, names): control characters are
    escaped in the file and on the terminal. The file is created new (never through a link
    someone placed in a shared temp dir), mode 0600."""
    details = escape_lines(details)
    stamp = time.strftime("%Y%m%dT%H%M%S")
    name = f"portfwd-crash-{stamp}-{os.getpid()}.log"
    path: Path | None = None
    for directory in (log_dir, Path(tempfile.gettempdir())):
        try:
            directory.mkdir(parents=True, exist_ok=True, mode=0o700)
            candidate = directory / name
            flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
            fd = os.open(candidate, flags, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(details)
            path = candidate
            break
        except OSError:
            continue
    last = details.strip().splitlines()[-1] if details.strip() else "unknown error"
    print(f"portfwd stopped after an unexpected error: {last}", file=sys.stderr)
    if path is not None:
        print(f"the full report is in {path} (please attach it to a bug report)", file=sys.stderr)
    else:
        print(details, file=sys.stderr)
    return 1


def describe_context(
    kubeconfig: str | None, context: str | None, *, own_kubeconfigs: int = 0
) -> tuple[str, str, str]:
    """(context, cluster, warning) for the header; a missing kubeconfig is a warning only.
    `own_kubeconfigs`: saved forwards that name a kubeconfig of their own (they run anyway,
    and the warning says so instead of sounding as if nothing could)."""
    from portfwd.kube.config import list_contexts

    try:
        infos, current = list_contexts(kubeconfig)
    except PortfwdError as exc:
        warning = str(exc)  # it names the kubeconfig itself
        if own_kubeconfigs:
            n = own_kubeconfigs
            warning += (
                f"; {n} saved forward{'s use their' if n != 1 else ' uses its'} own kubeconfig"
                f" and {'are' if n != 1 else 'is'} not affected"
            )
        return context or "", "", warning
    name = context or current or ""
    info = next((i for i in infos if i.name == name), None)
    if context and info is None:
        return context, "", f"context {context!r} is not in the kubeconfig"
    return name, info.cluster if info else "", ""


async def launch(
    *,
    kubeconfig: str | None,
    context: str | None,
    namespace: str | None,
    state_file: Path,
    restore: bool,
    spec_kubeconfig: str | None,
    seed: list[ForwardSpec] | None = None,
    extra_warnings: list[str] | None = None,
    ping_interval: float = 30.0,
    protocol: str = "auto",
    daemon: str = "off",
    state_given: bool = False,
    on_app: Callable[[Any], None] | None = None,
) -> int:
    """Build the engine (on a thread of its own), the store and the app; run until quit.

    `daemon`: "attach" uses a running daemon if there is one, "start" also starts one when
    none runs, "off" (the demo) always runs the forwards in this process.
    """
    from portfwd.engine.catalog import KubeCatalog
    from portfwd.engine.clients import ClientPool
    from portfwd.tui.app import PortfwdApp

    if daemon != "off":
        remote = await _attach(daemon == "start", kubeconfig, state_file if state_given else None)
        if remote is not None:
            return await _launch_attached(
                remote,
                kubeconfig=kubeconfig,
                context=context,
                namespace=namespace,
                state_file=state_file if state_given else None,
                restore=restore,
                spec_kubeconfig=spec_kubeconfig,
                ping_interval=ping_interval,
                protocol=protocol,
            )
    store = StateStore(state_file)
    loaded = await asyncio.to_thread(store.load)
    own = sum(1 for f in loaded.forwards if f.spec.kubeconfig)
    ctx_name, cluster, ctx_warning = await asyncio.to_thread(
        lambda: describe_context(kubeconfig, context, own_kubeconfigs=own)
    )
    warnings = [*loaded.warnings, *(extra_warnings or [])]
    if ctx_warning:
        warnings.append(ctx_warning)
    # The forwards run in a process of their own (daemon/private.py), or with "off" (the
    # demo) or PORTFWD_ENGINE=thread on an event loop of their own (engine/host.py): no
    # repaint delays a byte. The session and the picker's client pool stay here.
    engine = await _own_engine(daemon != "off", kubeconfig, ping_interval, warnings)
    clients = ClientPool(kubeconfig, ping_interval=ping_interval)
    try:
        session = Session(engine, store, loaded, restart=restore, seed=seed or ())
        app = PortfwdApp(
            engine,
            catalog=KubeCatalog(clients, kubeconfig=kubeconfig),
            session=session,
            context=ctx_name,
            cluster=cluster,
            namespace=namespace,
            spec_kubeconfig=spec_kubeconfig,
            warnings=warnings,
            protocol=protocol,
        )
        if on_app is not None:  # the demo's --chaos toasts
            on_app(app)
        try:
            await app.run_async()
        finally:
            # A crash skips the app's quit sequence: stop the forwards here. Do not save: the
            # last good state is already on disk, and a crash may have left the engine odd.
            await session.close(flush=False)
    finally:
        await engine.shutdown()
        await clients.close()
    if app.crash:
        return report_crash(state_file.parent, app.crash)
    if app.daemon_lost:
        lost = getattr(engine, "lost", None) or "it went away"
        raise PortfwdError(f"the dashboard's engine process stopped: {lost}")
    return app.return_code or 0


async def _own_engine(
    process: bool, kubeconfig: str | None, ping_interval: float, warnings: list[str]
) -> Any:
    """The dashboard's own engine: in a child process when `process` (and not turned off),
    else, or when the child cannot start (a warning says why), on an engine thread."""
    from portfwd.daemon import private
    from portfwd.engine.host import ThreadedEngine
    from portfwd.engine.manager import Manager

    if process and private.wanted():
        try:
            return await private.PrivateEngine.open(
                kubeconfig=kubeconfig, ping_interval=ping_interval
            )
        except (PortfwdError, OSError) as exc:
            warnings.append(f"the forwards run inside the dashboard: {exc}")
    return await ThreadedEngine.open(
        lambda: Manager(kubeconfig=kubeconfig, ping_interval=ping_interval)
    )


async def _attach(start: bool, kubeconfig: str | None, state_file: Path | None) -> Any:
    """A RemoteEngine on the running daemon; with `start`, one started for this; else None."""
    from portfwd.daemon.client import RemoteEngine
    from portfwd.daemon.replies import NotRunning
    from portfwd.daemon.service import ensure_started

    try:
        return await RemoteEngine.attach()
    except NotRunning:
        if not start:
            return None
    await asyncio.to_thread(ensure_started, kubeconfig=kubeconfig, state_file=state_file)
    return await RemoteEngine.attach()


async def _launch_attached(
    remote: Any,
    *,
    kubeconfig: str | None,
    context: str | None,
    namespace: str | None,
    state_file: Path | None,
    restore: bool,
    spec_kubeconfig: str | None,
    ping_interval: float,
    protocol: str,
) -> int:
    """The dashboard on the daemon's engine: no session here (the daemon keeps it); the
    picker lists resources with a client pool of its own."""
    from portfwd.daemon.sync_client import pinned_kubeconfig
    from portfwd.engine.catalog import KubeCatalog
    from portfwd.engine.clients import ClientPool
    from portfwd.tui.app import PortfwdApp

    ctx_name, cluster, ctx_warning = await asyncio.to_thread(describe_context, kubeconfig, context)
    server = remote.server
    warnings = [ctx_warning] if ctx_warning else []
    # What the daemon's session load left out of state.yaml, and why.
    warnings += [str(w) for w in server.get("warnings") or []]
    session = server.get("session")
    if state_file is not None and session != str(state_file):
        warnings.append(
            f"the daemon keeps its own session ({session}); --state {state_file} is not used"
        )
    if not restore:
        warnings.append("--no-restore does not apply: the daemon's forwards keep running")
    clients = ClientPool(kubeconfig, ping_interval=ping_interval)
    app = PortfwdApp(
        remote,
        catalog=KubeCatalog(clients, kubeconfig=kubeconfig),
        session=None,
        context=ctx_name,
        cluster=cluster,
        namespace=namespace,
        # The daemon reads kubeconfigs with its own environment: name this shell's.
        spec_kubeconfig=pinned_kubeconfig(spec_kubeconfig),
        warnings=warnings,
        protocol=protocol,
        daemon=server,
        # The daemon went away: start one (on the same session file) and attach again.
        reattach=lambda: _attach(True, kubeconfig, state_file),
    )
    try:
        await app.run_async()
    finally:
        await app.engine.shutdown()  # detach: the daemon keeps its forwards
        if app.engine is not remote:
            await remote.shutdown()
        await clients.close()
    if app.daemon_lost:
        lost = getattr(app.engine, "lost", None)
        raise PortfwdError(f"lost the portfwd daemon: {lost or 'it went away'}")
    return app.return_code or 0
