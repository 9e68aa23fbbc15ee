"""One daemon per user: an flock on `daemon.lock` that names the holder's pid.

The lock goes with the process, so a daemon killed with -9 never leaves it held; whoever
takes it next knows that a socket file still lying there is a dead daemon's.
"""

from __future__ import annotations

from portfwd.daemon.paths import DaemonPaths
from portfwd.errors import PortfwdError
from portfwd.pidlock import PidLock, lock_holder_pid


class AlreadyRunning(PortfwdError):
    pass


class DaemonLock:
    """The one-per-user lock (flock on `daemon.lock`, holding the pid)."""

    def __init__(self, paths: DaemonPaths) -> None:
        self.paths = paths
        self._lock = PidLock(paths.lock)

    def acquire(self) -> None:
        holder = self._lock.acquire()
        if holder is not None:
            pid = f" (pid {holder})" if holder.isdigit() else ""
            raise AlreadyRunning(
                f"a portfwd daemon is already running{pid}, listening on {self.paths.socket};"
                " `portfwd daemon status` shows it, `portfwd daemon stop` stops it"
            )

    def release(self) -> None:
        self._lock.release()


def lock_holder(paths: DaemonPaths) -> int | None:
    """The pid of a running daemon (its lock is held), or None."""
    return lock_holder_pid(paths.lock)
