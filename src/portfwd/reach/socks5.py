"""The server side of SOCKS5 (RFC 1928) with username/password (RFC 1929): CONNECT only.

Hand-written: the Python SOCKS libraries that are kept up (socksio, python-socks) implement
the *client* side only, and the server side needed here is three small messages. Only
domain names are accepted (`socks5h`, the client leaves name resolution to the proxy): an IP
address cannot name a Service, so it is refused as "not allowed by ruleset".
"""

from __future__ import annotations

import hmac
import ipaddress
import struct
from dataclasses import dataclass

from portfwd.reach.wire import BadRequest, HeadReader

VERSION = 5
NO_AUTH = 0x00
USER_PASS = 0x02
NO_ACCEPTABLE = 0xFF
CONNECT = 0x01
ATYP_IPV4, ATYP_DOMAIN, ATYP_IPV6 = 0x01, 0x03, 0x04

# Reply codes (RFC 1928 section 6).
SUCCEEDED = 0x00
GENERAL_FAILURE = 0x01
NOT_ALLOWED = 0x02
HOST_UNREACHABLE = 0x04
CONNECTION_REFUSED = 0x05
COMMAND_NOT_SUPPORTED = 0x07
ADDRESS_TYPE_NOT_SUPPORTED = 0x08


@dataclass(frozen=True)
class Request:
    host: str  # a domain name, or an IP address as text (refused by the caller)
    port: int
    is_ip: bool = False


def reply(code: int) -> bytes:
    """A reply with an unspecified bound address (clients ignore it for CONNECT)."""
    return bytes([VERSION, code, 0, ATYP_IPV4, 0, 0, 0, 0, 0, 0])


async def handshake(
    reader: HeadReader, credentials: tuple[str, str] | None
) -> tuple[Request | None, bytes]:
    """Negotiate the method (and check the password), read the request.

    Returns (the request, b"") or (None, the reply to send before closing) for a request
    that is refused before it names a host (wrong method, bad password, not CONNECT).
    Malformed bytes raise BadRequest.
    """
    version, count = await reader.exactly(2)
    if version != VERSION:
        raise BadRequest(f"SOCKS version {version} is not supported (only 5)")
    methods = await reader.exactly(count)
    wanted = USER_PASS if credentials is not None else NO_AUTH
    if wanted not in methods:
        return None, bytes([VERSION, NO_ACCEPTABLE])
    await reader.local.write(bytes([VERSION, wanted]))
    if credentials is not None:
        sub, ulen = await reader.exactly(2)
        user = await reader.exactly(ulen)
        (plen,) = await reader.exactly(1)
        password = await reader.exactly(plen)
        user_ok = hmac.compare_digest(user, credentials[0].encode())
        password_ok = hmac.compare_digest(password, credentials[1].encode())
        if sub != 1 or not (user_ok and password_ok):
            return None, b"\x01\x01"
        await reader.local.write(b"\x01\x00")
    version, command, _, atyp = await reader.exactly(4)
    if version != VERSION:
        raise BadRequest(f"SOCKS version {version} in the request")
    if atyp == ATYP_DOMAIN:
        (length,) = await reader.exactly(1)
        raw = await reader.exactly(length)
        try:
            host, is_ip = raw.decode("ascii"), False
        except UnicodeDecodeError:
            raise BadRequest("a SOCKS host name that is not ASCII") from None
    elif atyp == ATYP_IPV4:
        host, is_ip = str(ipaddress.IPv4Address(await reader.exactly(4))), True
    elif atyp == ATYP_IPV6:
        host, is_ip = str(ipaddress.IPv6Address(await reader.exactly(16))), True
    else:
        return None, reply(ADDRESS_TYPE_NOT_SUPPORTED)
    (port,) = struct.unpack("!H", await reader.exactly(2))
    if command != CONNECT:
        return None, reply(COMMAND_NOT_SUPPORTED)
    return Request(host, port, is_ip), b""
