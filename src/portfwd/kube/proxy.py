"""Which HTTP proxy applies to an API server, as kubectl (client-go) decides it."""

from __future__ import annotations

import contextlib
import ipaddress
import urllib.request

from yarl import URL


def env_proxy(server: URL) -> str | None:
    """The HTTP(S)_PROXY that applies to `server` (honouring NO_PROXY), as client-go does."""
    proxies = urllib.request.getproxies_environment()
    proxy = proxies.get(server.scheme)
    if not proxy or not server.host:
        return None
    if no_proxy(server.host, proxies.get("no", "")):
        return None
    return proxy


def without_password(proxy: str) -> str:
    """A proxy URL fit for a message: `http://user:secret@p:3128` shows as `http://user@p:3128`."""
    try:
        url = URL(proxy)
    except ValueError:
        return "<unparsable proxy URL>"
    return str(url.with_password(None)) if url.password is not None else proxy


def no_proxy(host: str, no_proxy: str) -> bool:
    """NO_PROXY matching: `*`, exact hosts, domain suffixes and CIDRs (client-go's rules)."""
    host = host.lower().strip("[]")
    try:
        address: ipaddress.IPv4Address | ipaddress.IPv6Address | None = ipaddress.ip_address(host)
    except ValueError:
        address = None
    for raw in no_proxy.split(","):
        entry = raw.strip().lower()
        if not entry:
            continue
        if entry == "*":
            return True
        if address is not None and "/" in entry:
            with contextlib.suppress(ValueError):
                if address in ipaddress.ip_network(entry, strict=False):
                    return True
            continue
        entry = entry.split(":", 1)[0] if entry.count(":") == 1 else entry
        bare = entry.lstrip(".")
        if host == bare or host.endswith("." + bare):
            return True
    return False
