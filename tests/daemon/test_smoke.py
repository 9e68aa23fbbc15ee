"""The daemon fixture itself works: a client says hello and lists nothing."""

from __future__ import annotations

from .conftest import InProcessDaemon


async def test_hello_and_empty_snapshot(daemon: InProcessDaemon) -> None:
    client = await daemon.client()
    try:
        assert client.server["pid"] > 0
        assert await client.request("snapshot") == []
    finally:
        await client.close()
