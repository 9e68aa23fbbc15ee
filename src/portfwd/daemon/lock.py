"""One daemon per user: an flock on `daemon.lock` that names the holder's pid.

The lock goes with the process, so a daemon killed with -9 never leaves it held; whoever
takes it next knows that a socket file still lying there is a dead daemon's.
"""

from __future__ import annotations

import contextlib
import fcntl
import os

from portfwd.daemon.paths import DaemonPaths
from portfwd.errors import PortfwdError


class AlreadyRunning(PortfwdError):
    pass


class DaemonLock:
    """The one-per-user lock (flock on `daemon.lock`, holding the pid). It goes with the
    process: a daemon killed with -9 never leaves it held."""

    def __init__(self, paths: DaemonPaths) -> None:
        self.paths = paths
        self._fd: int | None = None

    def acquire(self) -> None:
        fd = os.open(self.paths.lock, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 32).decode("ascii", "replace").strip()
            os.close(fd)
            pid = f" (pid {holder})" if holder.isdigit() else ""
            raise AlreadyRunning(
                f"a portfwd daemon is already running{pid}, listening on {self.paths.socket};"
                " `portfwd daemon status` shows it, `portfwd daemon stop` stops it"
            ) from None
        except BaseException:
            os.close(fd)
            raise
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            with contextlib.suppress(OSError):
                os.ftruncate(fd, 0)
            os.close(fd)


def lock_holder(paths: DaemonPaths) -> int | None:
    """The pid of a running daemon (its lock is held), or None."""
    try:
        fd = os.open(paths.lock, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            text = os.read(fd, 32).decode("ascii", "replace").strip()
            return int(text) if text.isdigit() else 0
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)
