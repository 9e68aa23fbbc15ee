"""The daemon check of `portfwd doctor`: does one run for this user, which, with how many
forwards. Cheap: one local socket round trip, bounded by :data:`TIMEOUT`; no daemon is fine
(the dashboard then runs the forwards itself)."""

from __future__ import annotations

from portfwd import version as this_version
from portfwd.doctor.model import Check, fail, ok, warn
from portfwd.errors import PortfwdError
from portfwd.safetext import escape_controls

TIMEOUT = 1.0
TITLE = "daemon"


def daemon_check() -> Check:
    from portfwd.daemon.lock import lock_holder
    from portfwd.daemon.paths import daemon_paths
    from portfwd.daemon.replies import NotRunning
    from portfwd.daemon.sync_client import SyncClient

    paths = daemon_paths()
    socket = escape_controls(str(paths.socket))
    try:
        conn = SyncClient.connect(paths, client="doctor", within=TIMEOUT, connect_timeout=TIMEOUT)
        try:
            status = conn.status()
        finally:
            conn.close()
    except NotRunning:
        holder = lock_holder(paths)
        if holder:
            return fail(
                "daemon",
                TITLE,
                f"a daemon (pid {holder}) holds {escape_controls(str(paths.lock))} but does not"
                f" answer on {socket}",
                f"kill {holder}, then `portfwd daemon --detach`",
                socket=str(paths.socket),
                pid=holder,
            )
        return ok(
            "daemon",
            TITLE,
            "not running (the dashboard runs its forwards itself; `portfwd daemon --detach`"
            " keeps them after it closes)",
            running=False,
            socket=str(paths.socket),
        )
    except PortfwdError as exc:  # another user's socket, another protocol version, gone
        return fail(
            "daemon",
            TITLE,
            str(exc),
            "stop that daemon (`portfwd daemon stop` with the portfwd that started it)",
            socket=str(paths.socket),
        )
    version = str(status.get("version"))
    line = (
        f"running (pid {status.get('pid')}, portfwd {escape_controls(version)}),"
        f" {status.get('forwards')} forwards, socket {socket}"
    )
    details = {"running": True, "socket": str(paths.socket), "pid": status.get("pid")}
    if version != this_version():
        return warn(
            "daemon",
            TITLE,
            line,
            f"it runs portfwd {escape_controls(version)}, this is {this_version()}: restart it"
            " (`portfwd daemon stop`, then `portfwd daemon --detach`)",
            **details,
        )
    return ok("daemon", TITLE, line, **details)
