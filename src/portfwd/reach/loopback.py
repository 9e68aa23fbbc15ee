"""Which loopback address and local port each Service gets, stably and without root.

Addresses (Linux, where all of 127.0.0.0/8 is the loopback network and binds without aliases):
the key `CONTEXT/NAMESPACE/NAME` (NAME is `svc`, or `pod.svc` for a headless Service's pod) is
hashed with SHA-256; its first three bytes, taken as a number modulo the size of the pool, pick
a slot in 127.1.0.1 .. 127.254.255.254 (127.0.x.x is left alone: 127.0.0.1 and Debian's
127.0.1.1 live there; host parts .0 and .255 are skipped). A slot already taken by another key
moves on to the next one. What was allocated is remembered in `reach-addresses.json` in the
config directory, so a Service keeps its address across restarts even when it once had to move,
and two keys (other namespaces, other clusters) never share one. Elsewhere (macOS has only
127.0.0.1 without aliases) every Service port is on 127.0.0.1 on a free port, and the table
printed says which.

Ports: a Service port is served on its own number. When that number cannot be bound without
rights (below `net.ipv4.ip_unprivileged_port_start`, 1024 unless changed, and not root), it
is served on PORT + 8000 (80 -> 8080, 443 -> 8443), and while that is taken by another port of
the same address, 1000 more (a Service with ports 80 and 8080: 80 -> 9080).
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import os
import secrets
import sys
from collections.abc import Iterable
from pathlib import Path

from portfwd.configdir import config_dir
from portfwd.store.state import write_atomic

TABLE_NAME = "reach-addresses.json"
LOW = int(ipaddress.IPv4Address("127.1.0.0"))
HIGH = int(ipaddress.IPv4Address("127.255.0.0"))  # exclusive
PRIVILEGED_SHIFT = 8000
SHIFT_STEP = 1000
UNPRIVILEGED_START_FILE = Path("/proc/sys/net/ipv4/ip_unprivileged_port_start")


def many_loopback_addresses(platform: str = sys.platform) -> bool:
    """Every 127.x.y.z binds without an alias (Linux)."""
    return platform.startswith("linux")


def unprivileged_port_start(path: Path = UNPRIVILEGED_START_FILE) -> int:
    """The lowest port this process may bind: 0 for root, else the kernel's setting."""
    geteuid = getattr(os, "geteuid", None)
    if geteuid is not None and geteuid() == 0:
        return 0
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return 1024


def local_ports(ports: Iterable[int], start: int) -> dict[int, int]:
    """Service port -> local port on one address (the rule in the module docstring)."""
    wanted = sorted(set(ports))
    out: dict[int, int] = {p: p for p in wanted if p >= start}
    used = set(out.values())
    for port in wanted:
        if port >= start:
            continue
        local = port + PRIVILEGED_SHIFT
        while local in used or local in wanted:  # ports < 1024: stays far below 65535
            local += SHIFT_STEP
        out[port] = local
        used.add(local)
    return out


SALT_KEY = "salt"  # never a key of an address: those are CONTEXT/NAMESPACE/NAME


def _usable(n: int) -> bool:
    return n & 0xFF not in (0, 255)


def _slot(key: str, salt: str = "") -> int:
    digest = hashlib.sha256((salt + key).encode()).digest()
    return LOW + int.from_bytes(digest[:3], "big") % (HIGH - LOW)


class AddressTable:
    """The allocated addresses, by key, kept in a file so they outlive the process."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path if path is not None else config_dir() / TABLE_NAME
        self._by_key: dict[str, str] = {}
        self._taken: set[str] = set()
        self._dirty = False
        # Where a new key's search starts: random per table (kept in it), so two users, or
        # two config dirs, on one machine do not pick the same 127.x address for the same
        # Service name and then fight over its ports.
        self.salt = ""
        self._load()
        if not self.salt:
            self.salt = secrets.token_hex(8)
            self._dirty = True

    def _load(self) -> None:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return
        if not isinstance(data, dict):
            return
        salt = data.pop(SALT_KEY, "")
        if isinstance(salt, str) and salt.isalnum():
            self.salt = salt
        for key, value in data.items():
            if isinstance(key, str) and isinstance(value, str) and value not in self._taken:
                try:
                    n = int(ipaddress.IPv4Address(value))
                except ValueError:
                    continue
                if LOW <= n < HIGH:
                    self._by_key[key] = value
                    self._taken.add(value)

    def address(self, context: str, namespace: str, name: str) -> str:
        """The address of `name` (`svc` or `pod.svc`) in `namespace` of `context`."""
        key = f"{context}/{namespace}/{name}"
        known = self._by_key.get(key)
        if known is not None:
            return known
        n = _slot(key, self.salt)
        while not _usable(n) or str(ipaddress.IPv4Address(n)) in self._taken:
            n += 1
            if n >= HIGH:
                n = LOW
        address = str(ipaddress.IPv4Address(n))
        self._by_key[key] = address
        self._taken.add(address)
        self._dirty = True
        return address

    def save(self) -> None:
        """Write the table if it changed (blocking: small file, called between batches)."""
        if not self._dirty:
            return
        text = json.dumps({SALT_KEY: self.salt, **self._by_key}, indent=1, sort_keys=True) + "\n"
        try:
            write_atomic(self.path, text)
        except OSError:
            return  # a read-only config dir: the addresses are new on each start, not pinned
        self._dirty = False
