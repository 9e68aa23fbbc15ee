"""Where the daemon lives: a private runtime directory with its socket and lock.

`$XDG_RUNTIME_DIR/portfwd` when the session has a runtime dir (systemd-logind: tmpfs, 0700,
gone at logout), else `run/` under portfwd's config dir; `$PORTFWD_RUNTIME_DIR` overrides both
(tests, or a path short enough for a unix socket). The directory is created 0700 and refused
(one line with the fix) if another user owns it or others may enter it: whoever can write
there could put their own socket in the daemon's place.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Mapping
from pathlib import Path
from typing import NamedTuple

from portfwd.configdir import config_dir
from portfwd.errors import PortfwdError
from portfwd.safetext import escape_controls

RUNTIME_DIR_ENV = "PORTFWD_RUNTIME_DIR"
SOCKET_NAME = "daemon.sock"
LOCK_NAME = "daemon.lock"
LOG_NAME = "daemon.log"
MAX_SOCKET_PATH = 103  # sun_path holds 108 bytes on Linux, 104 on macOS, with a NUL


class DaemonPaths(NamedTuple):
    """Where the daemon lives (a NamedTuple, not a dataclass: `portfwd ls` does not pay
    for importing dataclasses)."""

    directory: Path
    socket: Path
    lock: Path
    log: Path


def daemon_paths(environ: Mapping[str, str] | None = None) -> DaemonPaths:
    env = os.environ if environ is None else environ
    override = env.get(RUNTIME_DIR_ENV)
    runtime = env.get("XDG_RUNTIME_DIR")
    if override:
        directory = Path(override).expanduser()
    elif runtime and os.path.isabs(runtime) and os.path.isdir(runtime):
        directory = Path(runtime) / "portfwd"
    else:
        directory = config_dir(env) / "run"
    return DaemonPaths(
        directory=directory,
        socket=directory / SOCKET_NAME,
        lock=directory / LOCK_NAME,
        log=config_dir(env) / LOG_NAME,
    )


class UnsafeRuntimeDir(PortfwdError):
    pass


def ensure_private_dir(directory: Path) -> None:
    """Create `directory` 0700 (and its parents), or check that it is private to us."""
    shown = escape_controls(str(directory))
    try:
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        st = os.lstat(directory)
    except OSError as exc:
        raise PortfwdError(
            f"cannot create the daemon's directory {shown}: {exc.strerror or exc}"
        ) from None
    if not stat.S_ISDIR(st.st_mode):
        raise UnsafeRuntimeDir(f"{shown} is not a directory (a link?); remove it")
    if st.st_uid != os.geteuid():
        raise UnsafeRuntimeDir(
            f"the daemon's directory {shown} belongs to uid {st.st_uid}, not to you; remove it"
            f" or set {RUNTIME_DIR_ENV} to a directory of yours"
        )
    if st.st_mode & 0o077:
        raise UnsafeRuntimeDir(
            f"the daemon's directory {shown} is open to other users (mode "
            f"{stat.S_IMODE(st.st_mode):03o}); fix it with: chmod 700 {shown}"
        )


def check_socket_path(path: Path) -> None:
    if len(os.fsencode(path)) > MAX_SOCKET_PATH:
        raise PortfwdError(
            f"the daemon's socket path {escape_controls(str(path))} is too long for a unix"
            f" socket ({len(os.fsencode(path))} bytes, at most {MAX_SOCKET_PATH}); set"
            f" {RUNTIME_DIR_ENV} to a shorter directory"
        )
