"""Who is at the other end of a unix socket: the kernel's word, not the client's.

The socket file is 0600 in a 0700 directory, so another user cannot even connect; this is
the second lock on the door (a directory made too open by hand, a socket passed on).
"""

from __future__ import annotations

import socket
import struct
import sys
from typing import Protocol

_LOCAL_PEERCRED = 0x001  # macOS <sys/un.h>; level SOL_LOCAL (0)
_SOL_LOCAL = 0


class PeerSocket(Protocol):  # socket.socket, or asyncio's TransportSocket around one
    def getsockopt(self, level: int, option: int, buflen: int) -> bytes: ...


def peer_uid(sock: PeerSocket) -> int | None:
    """The uid of the process that connected, or None where the platform cannot tell."""
    so_peercred = getattr(socket, "SO_PEERCRED", None)
    if so_peercred is not None:  # Linux: struct ucred {pid_t pid; uid_t uid; gid_t gid;}
        raw = sock.getsockopt(socket.SOL_SOCKET, so_peercred, struct.calcsize("3i"))
        _pid, uid, _gid = struct.unpack("3i", raw)
        return int(uid)
    if sys.platform == "darwin":  # struct xucred {u_int cr_version; uid_t cr_uid; ...}
        raw = sock.getsockopt(_SOL_LOCAL, _LOCAL_PEERCRED, 76)
        _version, uid = struct.unpack_from("Ii", raw)
        return int(uid)
    return None
