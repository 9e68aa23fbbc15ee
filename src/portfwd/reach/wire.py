"""Reading a proxy request's head from a local connection, byte-exact about what follows it.

The head (a SOCKS5 greeting and request, or an HTTP request head) is read into a bounded
buffer; whatever the client already sent after it is handed to the tunnel before the pump
takes over, so no byte is lost or reordered.
"""

from __future__ import annotations

from portfwd.errors import PortfwdError
from portfwd.tunnel.listener import LocalConnection

HEAD_LIMIT = 64 * 1024  # an HTTP head or SOCKS request larger than this is refused


class BadRequest(PortfwdError):
    """The client spoke neither SOCKS5 nor HTTP correctly; the message says what was wrong."""


class ClientGone(BadRequest):
    """The client closed before sending a byte (a browser's speculative connection): not a
    malformed request, nothing to log."""


class HeadReader:
    def __init__(self, local: LocalConnection) -> None:
        self.local = local
        self.buf = bytearray()

    async def _more(self) -> None:
        data = await self.local.read()
        if not data and not self.buf:
            raise ClientGone("closed before a request")
        if not data:
            raise BadRequest("the client closed the connection before its request was complete")
        self.buf += data
        if len(self.buf) > HEAD_LIMIT + 65536:
            raise BadRequest(f"request head larger than {HEAD_LIMIT} bytes")

    async def peek(self, n: int) -> bytes:
        while len(self.buf) < n:
            await self._more()
        return bytes(self.buf[:n])

    async def exactly(self, n: int) -> bytes:
        data = await self.peek(n)
        del self.buf[:n]
        return data

    async def until(self, marker: bytes) -> bytes:
        """Everything up to and including `marker` (bounded by HEAD_LIMIT)."""
        start = 0
        while True:
            at = self.buf.find(marker, start)
            if at >= 0:
                end = at + len(marker)
                data = bytes(self.buf[:end])
                del self.buf[:end]
                return data
            if len(self.buf) > HEAD_LIMIT:
                raise BadRequest(f"request head larger than {HEAD_LIMIT} bytes")
            start = max(0, len(self.buf) - len(marker) + 1)
            await self._more()

    def rest(self) -> bytes:
        """What the client sent after the head (goes to the pod first)."""
        data = bytes(self.buf)
        self.buf.clear()
        return data
