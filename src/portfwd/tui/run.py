"""Start the dashboard: load the session, build the engine, run the app, always clean up.

Whatever happens inside the app, the terminal is restored (Textual does that when the app
exits) and every forward is stopped here in `finally`. An unexpected exception is written to a
log file whose path is printed, so a crash report is one file away.
"""

from __future__ import annotations

import asyncio
import io
import logging
import logging.handlers
import os
import sys
import tempfile
import time
import traceback
from collections.abc import Awaitable, Callable
from pathlib import Path

from portfwd.engine.model import ForwardSpec
from portfwd.errors import PortfwdError
from portfwd.eventloop import run
from portfwd.safetext import EscapingFormatter, escape_lines
from portfwd.store.state import StateStore, check_session_path, default_state_file


def run_tui(
    *,
    kubeconfig: str | None,
    context: str | None,
    namespace: str | None,
    state_file: Path | None,
    restore: bool,
    ping_interval: float = 30.0,
    protocol: str = "auto",
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
            logging.getLogger().removeHandler(handler)
            handler.close()


class PrivateLogFile(logging.handlers.RotatingFileHandler):
    """A rotating log file that only its owner may read (mode 0600, also after a rotation,
    and tightened if an older portfwd left it 0644): log lines quote API messages and paths."""

    def _open(self) -> io.TextIOWrapper:
        flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC
        fd = os.open(self.baseFilename, flags, 0o600)
        try:
            os.fchmod(fd, 0o600)
            return open(fd, "a", encoding=self.encoding, errors=self.errors)
        except BaseException:
            os.close(fd)
            raise


def _file_logging(log_dir: Path) -> logging.Handler | None:
    """Warnings go to a small rotating file: stderr belongs to the full-screen app."""
    try:
        log_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        handler = PrivateLogFile(
            log_dir / "portfwd.log", maxBytes=1_000_000, backupCount=1, encoding="utf-8"
        )
    except OSError:
        return None
    handler.setLevel(logging.WARNING)
    # One line per record: messages quote the cluster's text, escaped (portfwd.safetext).
    handler.setFormatter(EscapingFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    if root.level > logging.WARNING or root.level == logging.NOTSET:
        root.setLevel(logging.WARNING)
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
) -> int:
    """Build the engine, the store and the app on the running loop; run until quit."""
    from portfwd.engine.manager import Manager
    from portfwd.tui.app import PortfwdApp
    from portfwd.tui.catalog import KubeCatalog

    store = StateStore(state_file)
    session = await asyncio.to_thread(store.load)
    own = sum(1 for f in session.forwards if f.spec.kubeconfig)
    ctx_name, cluster, ctx_warning = await asyncio.to_thread(
        lambda: describe_context(kubeconfig, context, own_kubeconfigs=own)
    )
    warnings = [*session.warnings, *(extra_warnings or [])]
    if ctx_warning:
        warnings.append(ctx_warning)
    manager = Manager(kubeconfig=kubeconfig, ping_interval=ping_interval)
    app = PortfwdApp(
        manager,
        catalog=KubeCatalog(manager.clients, kubeconfig=kubeconfig),
        store=store,
        session=session,
        restart=restore,
        seed=seed,
        context=ctx_name,
        cluster=cluster,
        namespace=namespace,
        spec_kubeconfig=spec_kubeconfig,
        warnings=warnings,
        protocol=protocol,
    )
    try:
        await app.run_async()
    finally:
        # A crash skips the app's quit sequence: stop the forwards here. Do not save: the
        # last good state is already on disk, and a crash may have left the engine odd.
        await store.close(flush=False)
        await manager.shutdown()
    if app.crash:
        return report_crash(state_file.parent, app.crash)
    return app.return_code or 0
