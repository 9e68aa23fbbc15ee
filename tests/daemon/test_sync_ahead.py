"""`SyncClient.connect(ahead=OP)`: the request sent with the hello (what `portfwd ls` does to
wait for the daemon once) answers as a request sent after it would, and a client that then
asks something else still gets its own answers."""

from __future__ import annotations

import asyncio

from portfwd.daemon.sync_client import SNAPSHOT_OP, SyncClient
from portfwd.engine.model import ForwardState

from .conftest import InProcessDaemon


async def test_a_request_sent_with_the_hello_answers_as_usual(daemon: InProcessDaemon) -> None:
    await daemon.manager.add(daemon.spec(name="web"), start=False)

    def blocking() -> None:
        conn = SyncClient.connect(daemon.paths, client="test", ahead=SNAPSHOT_OP)
        try:
            records = conn.snapshot_records()
            assert [r["spec"]["name"] for r in records] == ["web"]
            assert conn.status()["forwards"] == 1  # the next request: a round trip of its own
        finally:
            conn.close()

        conn = SyncClient.connect(daemon.paths, client="test", ahead=SNAPSHOT_OP)
        try:  # the early reply is not what this asks for: it is passed over
            assert conn.start("web").state is ForwardState.ACTIVE
            assert [r["state"] for r in conn.snapshot_records()] == ["active"]
        finally:
            conn.close()

    await asyncio.wait_for(asyncio.to_thread(blocking), 30)
