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


@dataclass(frozen=True)
class PortCheck:
    ok: bool
    message: str  # why not, or a short confirmation


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
    sock = socket.socket(family, socket.SOCK_STREAM)
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
    if err.errno == errno.EADDRNOTAVAIL:
        return PortCheck(False, f"address {address} is not on this machine")
    return PortCheck(False, f"cannot bind {address}:{port}: {err.strerror}")


async def check_port(text: str, address: str, taken: Mapping[int, str]) -> PortCheck:
    return await asyncio.to_thread(check_port_sync, text, address, taken)


LOOPBACK = frozenset({"127.0.0.1", "::1", "localhost"})
DEFAULT_ADDRESSES = ("127.0.0.1",)


def parse_addresses(raw: str) -> tuple[str, ...]:
    """A form's comma-separated listen addresses; empty means loopback, like the CLI."""
    return tuple(a.strip() for a in raw.split(",") if a.strip()) or DEFAULT_ADDRESSES


async def check_port_all(
    text: str, addresses: tuple[str, ...], taken: Mapping[int, str], *, note_public: bool = True
) -> PortCheck:
    """The port on every address; a non-loopback address is allowed but called out (unless
    the form says so once itself, next to the address: `note_public=False`)."""
    result = PortCheck(False, "no address")
    for address in addresses or DEFAULT_ADDRESSES:
        result = await check_port(text, address, taken)
        if not result.ok:
            return result
    if len(addresses) > 1:
        result = PortCheck(True, f"{text.strip()} is free on {', '.join(addresses)}")
    public = [a for a in addresses if a not in LOOPBACK]
    if public and note_public:
        note = f" (⚠ {', '.join(public)} is reachable from other machines)"
        return PortCheck(True, result.message + note)
    return result


def suggest_port_sync(remote: int, address: str, taken: Mapping[int, str]) -> int:
    """The remote port if free, else the next free one (privileged ones start at +8000)."""
    candidates: list[int] = [remote]
    start = remote + 8000 if remote < 1024 else remote + 1
    candidates.extend(range(start, min(start + 200, 65536)))
    for port in candidates:
        if 1 <= port <= 65535 and check_port_sync(str(port), address, taken).ok:
            return port
    return 0  # let the engine pick one


async def suggest_port(remote: int, address: str, taken: Mapping[int, str]) -> int:
    return await asyncio.to_thread(suggest_port_sync, remote, address, taken)
