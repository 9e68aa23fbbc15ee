"""`portfwd doctor`'s checks of this machine: loopback addresses, privileged ports, and the
config directory and session file portfwd reads and writes."""

from __future__ import annotations

import os
import socket
import stat
from pathlib import Path

from portfwd.configdir import STATE_FILE_NAME, config_dir
from portfwd.doctor.model import Check, fail, ok, warn
from portfwd.filecheck import UnsafeFile, check_private
from portfwd.safetext import escape_controls

CAP_NET_BIND_SERVICE = 10
PRIVILEGED_BELOW = 1024


def ipv6_loopback() -> Check:
    """`localhost` forwards listen on 127.0.0.1 and ::1: is ::1 there?"""
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as sock:
            sock.bind(("::1", 0))
    except OSError as exc:
        return warn(
            "ipv6_loopback",
            "IPv6 loopback",
            f"::1 is not available ({exc.strerror or exc}): localhost forwards listen on "
            "127.0.0.1 only",
            "nothing to do unless a client connects to ::1; enable IPv6 on lo to have both",
        )
    return ok("ipv6_loopback", "IPv6 loopback", "::1 is available (localhost = 127.0.0.1 and ::1)")


def _capabilities() -> int:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("CapEff:"):
                return int(line.split()[1], 16)
    except (OSError, ValueError, IndexError):
        pass
    return 0


def _unprivileged_start() -> int:
    try:
        text = Path("/proc/sys/net/ipv4/ip_unprivileged_port_start").read_text()
        return int(text.strip())
    except (OSError, ValueError):
        return PRIVILEGED_BELOW


def privileged_ports() -> Check:
    """May this user listen on ports below 1024 (`portfwd forward svc/web 80`)?"""
    start = _unprivileged_start()
    if start <= 1:
        return ok(
            "privileged_ports", "privileged ports", "any port may be used (no privileged range)"
        )
    if os.geteuid() == 0:
        return ok("privileged_ports", "privileged ports", f"ports below {start} allowed (root)")
    if _capabilities() & (1 << CAP_NET_BIND_SERVICE):
        return ok(
            "privileged_ports",
            "privileged ports",
            f"ports below {start} allowed (CAP_NET_BIND_SERVICE)",
        )
    return warn(
        "privileged_ports",
        "privileged ports",
        f"ports below {start} need root or CAP_NET_BIND_SERVICE",
        f"use a local port from {start} up (8080:80 instead of 80)",
        unprivileged_port_start=start,
    )


def _mode(path: Path) -> str:
    return f"{stat.S_IMODE(os.stat(path).st_mode):04o}"


def files(state_file: Path | None) -> list[Check]:
    """The config directory and the session file: where, which modes, and whether portfwd
    will use them (another user must not be able to change them)."""
    directory = Path(state_file).parent if state_file else config_dir()
    session = Path(state_file) if state_file else directory / STATE_FILE_NAME
    shown_dir, shown_file = escape_controls(str(directory)), escape_controls(str(session))
    checks: list[Check] = []
    try:
        check_private(directory / ".portfwd-doctor", what="config directory entry")
    except UnsafeFile as exc:
        checks.append(fail("config_dir", "config dir", str(exc)))
    else:
        if directory.is_dir():
            checks.append(
                ok(
                    "config_dir",
                    "config dir",
                    f"{shown_dir} (mode {_mode(directory)})",
                    path=str(directory),
                )
            )
        else:
            checks.append(
                ok(
                    "config_dir",
                    "config dir",
                    f"{shown_dir} does not exist yet: portfwd creates it (mode 0700) on the "
                    "first save",
                    path=str(directory),
                )
            )
    if session.exists() or session.is_symlink():
        try:
            check_private(session, what="session file")
        except UnsafeFile as exc:
            checks.append(fail("session_file", "session file", str(exc)))
        else:
            if not session.is_file():
                checks.append(
                    fail(
                        "session_file",
                        "session file",
                        f"{shown_file} is not a regular file",
                        "remove it or choose another file with --state FILE",
                    )
                )
            else:
                mode = _mode(session)
                readable = stat.S_IMODE(os.stat(session).st_mode) & 0o077
                line = f"{shown_file} (mode {mode})"
                if readable:
                    checks.append(
                        warn(
                            "session_file",
                            "session file",
                            f"{line}: others may read it",
                            f"chmod 600 {shown_file} (portfwd writes it 0600)",
                        )
                    )
                else:
                    checks.append(ok("session_file", "session file", line, path=str(session)))
    else:
        checks.append(
            ok("session_file", "session file", f"{shown_file} (not written yet)", path=str(session))
        )
    return checks
