"""Whether the client may talk to the socket it reached: the same checks the daemon makes,
from the other side.

`PORTFWD_RUNTIME_DIR` (or a hand-made directory) could point the client at another user's
socket, and that user's program would receive `add`'s hello and spec (a kubeconfig path, a
context) and have the client act on its replies. So before it sends anything, a client
checks that the socket's directory is the user's own and private (as the daemon creates it),
and that the process listening on it runs as the user (the kernel's word: SO_PEERCRED or
getpeereid, `daemon/peer.py`). One call, :func:`check_daemon`, for both clients.
"""

from __future__ import annotations

import os
import stat

from portfwd.daemon.paths import RUNTIME_DIR_ENV, DaemonPaths, UnsafeRuntimeDir
from portfwd.daemon.peer import PeerSocket, peer_uid
from portfwd.errors import PortfwdError
from portfwd.safetext import escape_controls


class UntrustedDaemon(PortfwdError):
    """The socket is not the user's own daemon's: nothing was sent to it."""


def check_directory(paths: DaemonPaths, uid: int | None = None) -> None:
    """UnsafeRuntimeDir (one line, with the fix) unless the socket's directory is a real
    directory of the user's that others cannot enter."""
    uid = os.geteuid() if uid is None else uid
    shown = escape_controls(str(paths.directory))
    try:
        st = os.lstat(paths.directory)
    except OSError as exc:
        raise UnsafeRuntimeDir(
            f"cannot check the daemon's directory {shown}: {exc.strerror or exc}"
        ) from None
    if not stat.S_ISDIR(st.st_mode):
        raise UnsafeRuntimeDir(
            f"the daemon's directory {shown} is not a directory (a link?); not connecting"
        )
    if st.st_uid != uid:
        raise UnsafeRuntimeDir(
            f"the daemon's directory {shown} belongs to uid {st.st_uid}, not to you (uid {uid});"
            f" not connecting: unset {RUNTIME_DIR_ENV} or point it at a directory of yours"
        )
    if st.st_mode & 0o077:
        raise UnsafeRuntimeDir(
            f"the daemon's directory {shown} is open to other users (mode"
            f" {stat.S_IMODE(st.st_mode):03o}); not connecting: fix it with: chmod 700 {shown}"
        )


def check_server(sock: PeerSocket, paths: DaemonPaths, uid: int | None = None) -> None:
    """UntrustedDaemon unless the process listening on the socket runs as the user."""
    uid = os.geteuid() if uid is None else uid
    try:
        theirs = peer_uid(sock)
    except OSError as exc:
        raise UntrustedDaemon(
            f"cannot tell who listens on {escape_controls(str(paths.socket))}"
            f" ({exc.strerror or exc}); not connecting"
        ) from None
    if theirs is not None and theirs != uid:
        raise UntrustedDaemon(
            f"the process listening on {escape_controls(str(paths.socket))} runs as uid"
            f" {theirs}, not as you (uid {uid}); not connecting: unset {RUNTIME_DIR_ENV} or"
            " point it at a directory of yours"
        )


def check_daemon(sock: PeerSocket, paths: DaemonPaths) -> None:
    """Both checks; call it after connecting, before sending anything."""
    check_directory(paths)
    check_server(sock, paths)
