"""One round trip through a forward: connect, send, read the same number of bytes back."""

from __future__ import annotations

import asyncio


async def echo_once(
    port: int, payload: bytes, limit: float = 20.0, host: str = "127.0.0.1"
) -> bytes:
    """What came back for `payload` through `host:port` (an echo backend behind it), within
    `limit` seconds; raises IncompleteReadError if the connection ends first."""
    async with asyncio.timeout(limit):
        reader, writer = await asyncio.open_connection(host, port)
        try:
            writer.write(payload)
            await writer.drain()
            return await reader.readexactly(len(payload))
        finally:
            writer.close()
