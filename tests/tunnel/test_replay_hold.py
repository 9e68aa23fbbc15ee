"""ReplayStream past its limit: a fast client's connection refused before the pod answered
is still replayed whole; a pod that answers late still gets everything, once."""

from __future__ import annotations

import asyncio

from portfwd.tunnel.protocol import TunnelError, TunnelStream
from portfwd.tunnel.replay import REPLAY_LIMIT, ReplayStream

PIECE = 64 * 1024


class FakeStream:
    """Takes what is sent; `refuse()` / `answer()` decide what `receive` gives."""

    half_close = True
    server_closing = None
    error: str | None = None

    def __init__(self) -> None:
        self.sent = bytearray()
        self.eof = False
        self.aborted = False
        self.at_limit = asyncio.Event()  # REPLAY_LIMIT bytes came
        self._verdict: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()

    def refuse(self, text: str) -> None:
        self._verdict.set_exception(TunnelError(text))

    def answer(self, data: bytes) -> None:
        self._verdict.set_result(data)

    async def send(self, data: bytes) -> None:
        if self.aborted:
            raise TunnelError("closed")
        self.sent += data
        if len(self.sent) >= REPLAY_LIMIT:
            self.at_limit.set()

    async def send_eof(self) -> None:
        self.eof = True

    async def receive(self) -> bytes:
        return await self._verdict

    async def close(self) -> None:
        self.aborted = True

    def abort(self) -> None:
        self.aborted = True


async def _never(exc: TunnelError) -> TunnelStream | None:
    return None


async def test_refused_after_more_than_the_limit_is_replayed_whole() -> None:
    first, second = FakeStream(), FakeStream()
    moved: list[str] = []

    async def elsewhere(exc: TunnelError) -> TunnelStream | None:
        moved.append(str(exc))
        return second

    stream = ReplayStream(first, _never, elsewhere)
    payload = bytes(range(256)) * (4 * REPLAY_LIMIT // 256)

    async def upload() -> None:
        for i in range(0, len(payload), PIECE):
            await stream.send(payload[i : i + PIECE])
        await stream.send_eof()

    sender = asyncio.create_task(upload())
    receiver = asyncio.create_task(stream.receive())
    await asyncio.wait_for(first.at_limit.wait(), 10)
    first.refuse("connection refused")  # the pod was deleted
    second.answer(b"hello")
    await asyncio.wait_for(sender, 10)
    assert await asyncio.wait_for(receiver, 10) == b"hello"
    assert moved == ["connection refused"]
    assert bytes(second.sent) == payload and second.eof
    assert first.aborted
    assert len(first.sent) == REPLAY_LIMIT  # held there: nothing more went to the refused pod


async def test_a_pod_that_answers_after_the_upload_gets_it_once() -> None:
    only = FakeStream()
    stream = ReplayStream(only, _never, _never, hold=0.05)
    payload = b"x" * (2 * REPLAY_LIMIT)
    for i in range(0, len(payload), PIECE):
        await asyncio.wait_for(stream.send(payload[i : i + PIECE]), 10)
    assert bytes(only.sent) == payload
    assert not stream.replayable  # past the limit, unanswered: no replay any more
    only.answer(b"done")
    assert await stream.receive() == b"done"


async def test_the_first_byte_releases_a_held_client_at_once() -> None:
    only = FakeStream()
    stream = ReplayStream(only, _never, _never, hold=3600)
    payload = b"y" * (2 * REPLAY_LIMIT)

    async def upload() -> None:
        for i in range(0, len(payload), PIECE):
            await stream.send(payload[i : i + PIECE])

    sender = asyncio.create_task(upload())
    receiver = asyncio.create_task(stream.receive())
    await asyncio.wait_for(only.at_limit.wait(), 10)
    only.answer(b"welcome")
    assert await asyncio.wait_for(receiver, 10) == b"welcome"
    await asyncio.wait_for(sender, 10)
    assert bytes(only.sent) == payload
