"""The `--address` list, with kubectl's rules.

kubectl accepts IP addresses and `localhost`. `localhost` stands for 127.0.0.1 and ::1 and
succeeds when at least one of them binds (a host without IPv6 keeps 127.0.0.1 with a warning);
an address the user named explicitly must bind, or the forward fails.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from portfwd.errors import InputError

LOCALHOST_ADDRESSES = ("127.0.0.1", "::1")


@dataclass(frozen=True)
class BindAddress:
    host: str  # an IP literal
    required: bool  # False for the expansions of `localhost`: one of them is enough

    @property
    def loopback(self) -> bool:
        return ipaddress.ip_address(self.host).is_loopback


def parse_addresses(text: str | tuple[str, ...] | list[str]) -> list[BindAddress]:
    """`localhost`, `127.0.0.1,::1`, `0.0.0.0` ... -> the addresses to bind, without repeats."""
    items = text.split(",") if isinstance(text, str) else list(text)
    result: list[BindAddress] = []
    seen: set[str] = set()
    for raw in items:
        item = raw.strip()
        if not item:
            continue
        if item.lower() == "localhost":
            candidates = [BindAddress(a, required=False) for a in LOCALHOST_ADDRESSES]
        else:
            try:
                ip = ipaddress.ip_address(item.strip("[]"))
            except ValueError:
                raise InputError(
                    f"invalid listen address {item!r}: use IP addresses or localhost,"
                    " e.g. --address 127.0.0.1,::1"
                ) from None
            candidates = [BindAddress(str(ip), required=True)]
        for cand in candidates:
            if cand.host not in seen:
                seen.add(cand.host)
                result.append(cand)
            elif cand.required:
                result = [BindAddress(b.host, True) if b.host == cand.host else b for b in result]
    if not result:
        raise InputError("no listen address given: use --address localhost or an IP address")
    return result


def format_host_port(host: str, port: int) -> str:
    """`127.0.0.1:8080`, `[::1]:8080`, as kubectl prints them."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
