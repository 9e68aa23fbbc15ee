"""Ports a test can count on under xdist. A port probed free and then released can be taken
by a parallel test before it is used, so tests never do that:
- most give portfwd port 0 and read back what it bound (a forward's snapshot `local_port`,
  its "Forwarding from" line: `forwarding_port`);
- where a concrete port must be written down first (typed into the dashboard's edit box,
  saved in a state file), `reserved_port()` holds it with a bound, non-listening socket with
  SO_REUSEADDR: no other program can take it (binds without SO_REUSEADDR are refused and the
  kernel never hands it out for port 0), while portfwd's listener, which sets SO_REUSEADDR,
  still can; connects to it are refused while portfwd does not listen;
- where nothing may ever listen (a refused connection), `refused_port()` holds it the same way
  without SO_REUSEADDR, so nobody at all can listen on it.
Both are held until the test ends (the autouse fixture in tests/conftest.py releases them)."""

from __future__ import annotations

import re
import socket

FORWARDING_RE = re.compile(r"^Forwarding from (\S+):(\d+) -> (\d+)$")

_held: list[socket.socket] = []


def _hold(reuse: bool) -> int:
    """Bind 127.0.0.1 on port 0, then ::1 on the same port where IPv6 exists (portfwd's
    `localhost` binds both); retried when the ::1 side is already taken."""
    for _ in range(50):
        v4 = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if reuse:
            v4.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        v4.bind(("127.0.0.1", 0))
        port = int(v4.getsockname()[1])
        try:
            v6 = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
        except OSError:  # no IPv6 on this host: the IPv4 side is all there is
            _held.append(v4)
            return port
        try:
            v6.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            if reuse:
                v6.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            v6.bind(("::1", port))
        except OSError as exc:
            v4.close()
            v6.close()
            if exc.errno in (99, 97):  # EADDRNOTAVAIL / EAFNOSUPPORT: no ::1 here
                return _hold_v4_only(reuse)
            continue  # ::1 side taken: another port
        _held.extend((v4, v6))
        return port
    raise AssertionError("no port free on both 127.0.0.1 and ::1 in 50 tries")


def _hold_v4_only(reuse: bool) -> int:
    v4 = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if reuse:
        v4.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    v4.bind(("127.0.0.1", 0))
    _held.append(v4)
    return int(v4.getsockname()[1])


def reserved_port() -> int:
    """A port only portfwd may bind (on 127.0.0.1 and ::1) until the test ends."""
    return _hold(reuse=True)


def reserved_pair() -> tuple[int, int]:
    """Two adjacent ports P, P+1, each as `reserved_port()` (for "the next free port")."""
    for _ in range(50):
        first = reserved_port()
        before = len(_held)
        try:
            _bind_both(first + 1)
        except OSError:
            del _held[before:]
            continue
        return first, first + 1
    raise AssertionError("no two adjacent ports free in 50 tries")


def _bind_both(port: int) -> None:
    held = []
    try:
        for family, host in ((socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1")):
            try:
                sock = socket.socket(family, socket.SOCK_STREAM)
            except OSError:
                continue  # no IPv6 here
            held.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            try:
                sock.bind((host, port))
            except OSError as exc:
                if family == socket.AF_INET6 and exc.errno in (97, 99):
                    continue  # no ::1 here
                raise
    except OSError:
        for sock in held:
            sock.close()
        raise
    _held.extend(held)


def refused_port() -> int:
    """A port nobody can listen on (127.0.0.1 and ::1) until the test ends: connects to it
    are refused."""
    return _hold(reuse=False)


def release_held_ports() -> None:
    """Called after each test (tests/conftest.py)."""
    while _held:
        _held.pop().close()


def forwarding_port(line: str) -> int:
    """The local port of a `Forwarding from HOST:PORT -> REMOTE` line."""
    match = FORWARDING_RE.match(line.strip())
    assert match, line
    return int(match.group(2))
