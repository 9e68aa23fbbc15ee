"""Choosing and checking a local port before the engine binds it.

The checks run a real bind (then close it) in a thread: that is the only honest answer to "is
it free" and "may I bind a privileged port here". The engine still reports the real bind
result; this only lets the form say early what would go wrong.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass

from portfwd.errors import InputError
from portfwd.safetext import escape_controls
from portfwd.tunnel.addresses import BindAddress
from portfwd.tunnel.addresses import parse_addresses as bind_addresses


@dataclass(frozen=True)
class PortCheck:
    ok: bool
    message: str  # why not, or a short confirmation
    no_such_address: bool = False  # this machine lacks the address (::1 without IPv6)


def _is_root() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0


def _unprivileged_start() -> int:
    """Linux lets anyone bind from net.ipv4.ip_unprivileged_port_start (1024 by default)."""
    path = "/proc/sys/net/ipv4/ip_unprivileged_port_start"
    with contextlib.suppress(OSError, ValueError), open(path, encoding="ascii") as fh:
        return int(fh.read().strip())
    return 1024


def _bind_error(address: str, port: int) -> OSError | None:
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    try:
        sock = socket.socket(family, socket.SOCK_STREAM)
    except OSError as exc:  # no IPv6 at all
        return exc
    try:
        # Same option the listener uses, so TIME_WAIT leftovers do not look "in use".
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((address, port))
    except OSError as exc:
        return exc
    finally:
        sock.close()
    return None


def check_port_sync(text: str, address: str, taken: Mapping[int, str]) -> PortCheck:
    text = text.strip()
    if not text:
        return PortCheck(False, "enter a local port (1-65535)")
    if not text.isdigit():
        return PortCheck(False, f"“{text}” is not a port number (1-65535)")
    port = int(text)
    if not 1 <= port <= 65535:
        return PortCheck(False, f"{port} is out of range: use 1-65535")
    if port in taken:
        return PortCheck(False, f"{port} is in use by forward {taken[port]}")
    if port < _unprivileged_start() and not _is_root():
        return PortCheck(False, f"{port} is privileged (<1024) here: pick 1024 or above")
    err = _bind_error(address, port)
    if err is None:
        return PortCheck(True, f"{address}:{port} is free")
    if err.errno in (errno.EACCES, errno.EPERM):
        return PortCheck(False, f"{port} is privileged (<1024) here: pick 1024 or above")
    if err.errno == errno.EADDRINUSE:
        return PortCheck(False, f"{port} is in use by another program")
    if err.errno in (errno.EADDRNOTAVAIL, errno.EAFNOSUPPORT):
        return PortCheck(False, f"address {address} is not on this machine", True)
    return PortCheck(False, f"cannot bind {address}:{port}: {err.strerror}")


async def check_port(text: str, address: str, taken: Mapping[int, str]) -> PortCheck:
    return await asyncio.to_thread(check_port_sync, text, address, taken)


DEFAULT_ADDRESSES = ("localhost",)  # as `portfwd forward`: 127.0.0.1 and ::1


def parse_addresses(raw: str) -> tuple[str, ...]:
    """A form's comma-separated listen addresses; empty means localhost, like the CLI."""
    return tuple(a.strip() for a in raw.split(",") if a.strip()) or DEFAULT_ADDRESSES


def _hosts(addresses: tuple[str, ...]) -> list[BindAddress] | str:
    """What binding `addresses` means (localhost: 127.0.0.1 and, if present, ::1), or why
    they cannot be used."""
    bad = []
    for item in addresses:
        try:
            bind_addresses(item)
        except InputError:
            bad.append(item)
    if bad:
        shown = ", ".join(f"“{escape_controls(b)}”" for b in bad)
        verb = "is not an IP address" if len(bad) == 1 else "are not IP addresses"
        return f"{shown} {verb} or localhost"
    return bind_addresses(addresses or DEFAULT_ADDRESSES)


def public_addresses(addresses: tuple[str, ...]) -> list[str]:
    """The valid addresses other machines can reach (not loopback): the forms warn."""
    hosts = _hosts(addresses)
    if isinstance(hosts, str):
        return []  # not addresses at all: the port check says so instead
    return [h.host for h in hosts if not h.loopback]


async def check_port_all(
    text: str, addresses: tuple[str, ...], taken: Mapping[int, str], *, note_public: bool = True
) -> PortCheck:
    """The port on every address; a non-loopback address is allowed but called out (unless
    the form says so once itself, next to the address: `note_public=False`). For
    `localhost`, ::1 may be missing (a host without IPv6): 127.0.0.1 alone is enough, as the
    engine binds it."""
    hosts = _hosts(addresses)
    if isinstance(hosts, str):
        return PortCheck(False, hosts)
    result = PortCheck(False, "no address")
    bound = []
    for host in hosts:
        result = await check_port(text, host.host, taken)
        if result.ok:
            bound.append(host)
        elif host.required or not result.no_such_address:
            return result
    if not bound:
        return result
    if addresses == DEFAULT_ADDRESSES:
        result = PortCheck(True, f"localhost:{text.strip()} is free")
    elif len(bound) > 1:
        result = PortCheck(True, f"{text.strip()} is free on {', '.join(h.host for h in bound)}")
    public = [h.host for h in bound if not h.loopback]
    if public and note_public:
        note = f" (⚠ {', '.join(public)} is reachable from other machines)"
        return PortCheck(True, result.message + note)
    return result


def suggest_port_sync(remote: int, addresses: tuple[str, ...], taken: Mapping[int, str]) -> int:
    """The remote port when it is free on every address and may be bound (below 1024 only
    as root); else the next free port above it, counting from remote + 8000 for a port
    below 1024 (80 -> 8080). 0 (let the engine pick one) when none of 200 is free. An
    address `localhost` stands for but this machine lacks (::1 without IPv6) is skipped.
    Blocking (it binds): call it from a thread."""
    hosts = _hosts(addresses)
    if isinstance(hosts, str):  # not addresses: suggest for localhost, the check says why
        hosts = bind_addresses(DEFAULT_ADDRESSES)
    usable = [h.host for h in hosts if h.required or _is_available(h.host)]
    candidates: list[int] = [remote]
    start = remote + 8000 if remote < 1024 else remote + 1
    candidates.extend(range(start, min(start + 200, 65536)))
    for port in candidates:
        if 1 <= port <= 65535 and all(
            check_port_sync(str(port), host, taken).ok for host in usable
        ):
            return port
    return 0


async def suggest_port(remote: int, addresses: tuple[str, ...], taken: Mapping[int, str]) -> int:
    return await asyncio.to_thread(suggest_port_sync, remote, addresses, taken)


def _is_available(host: str) -> bool:
    """Whether this machine has the address at all (::1 on a host without IPv6: no)."""
    err = _bind_error(host, 0)
    return err is None or err.errno not in (errno.EADDRNOTAVAIL, errno.EAFNOSUPPORT)
