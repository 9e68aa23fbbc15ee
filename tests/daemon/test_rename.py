"""A rename (the dashboard's `R`, issue 18) changes the label only: the forward keeps running
and its open connections keep moving bytes, in-process and through the daemon."""

from __future__ import annotations

import asyncio
import os
from dataclasses import replace

import pytest

from portfwd.daemon.client import RemoteEngine
from portfwd.engine.model import ForwardState
from portfwd.errors import InputError
from tests.support.wait import eventually

from .conftest import InProcessDaemon

pytestmark = pytest.mark.timeout(120)


async def roundtrip(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
    payload = os.urandom(5000)
    writer.write(payload)
    await writer.drain()
    return await asyncio.wait_for(reader.readexactly(len(payload)), 15) == payload


async def test_a_rename_keeps_the_forward_and_its_connections(daemon: InProcessDaemon) -> None:
    remote = await RemoteEngine.attach(daemon.paths, client="test")
    writer: asyncio.StreamWriter | None = None
    try:
        fid = await remote.add(daemon.spec(name="before"))
        other = await remote.add(daemon.spec(name="taken"))
        await eventually(lambda: remote.get(fid).state is ForwardState.ACTIVE)
        port = remote.get(fid).local_port
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        assert await roundtrip(reader, writer)

        # Through the daemon.
        await remote.update(fid, replace(remote.get(fid).spec, name="after"))
        await eventually(lambda: remote.get(fid).spec.name == "after")
        assert await roundtrip(reader, writer)  # the same connection: nothing restarted
        assert daemon.manager.get(fid).stats.reconnects == 0

        # In-process (the Manager the dashboard holds without a daemon).
        await daemon.manager.update(fid, replace(daemon.manager.get(fid).spec, name=None))
        assert daemon.manager.get(fid).spec.name is None
        assert daemon.manager.get(fid).state is ForwardState.ACTIVE
        assert await roundtrip(reader, writer)

        with pytest.raises(InputError, match="already used"):
            await remote.update(fid, replace(remote.get(fid).spec, name="taken"))
        assert remote.get(other).spec.name == "taken"
    finally:
        if writer is not None:
            writer.close()
        await remote.shutdown()
