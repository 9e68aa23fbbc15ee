"""A connection that outlives a dead tunnel, as long as nothing came back from the pod.

When the session under a stream is found dead (SessionLost) before the pod sent a single
byte, the request cannot have been answered: with a kubelet restarted behind an API server
that kept the client's WebSocket, it never reached a pod at all. Such a connection is not
lost: :class:`ReplayStream` keeps what the client sent (up to :data:`REPLAY_LIMIT` bytes, and
its half-close) until the first byte from the pod, and on SessionLost asks its owner for a new
stream (`reopen`, on a fresh session once the forward has one) and sends it all again there.
The pumps above see one stream throughout.

A stream the kubelet refused before the pod sent anything (its pod was deleted while the
forward still routed there: "connection refused", "failed to find sandbox"), or that the pod
ended without a byte, is replayed the same way through `elsewhere`, which only gives a new
stream on another pod (the forward moved away from this one: it was deleted).

The kubelet accepts a stream before it dials the pod, and nothing on the wire says the dial
worked: a client that sends fast (an upload, a large echo) has sent far more than
:data:`REPLAY_LIMIT` by the time a refusal comes back. So once the kept bytes reach the limit
before the pod answered, sending pauses until the pod's first byte or the stream's failure,
at most :data:`REPLAY_HOLD` seconds (a refusal comes back within tens of milliseconds, but
the runtime closes a dying pod's connection up to a second after its backend went, and a
loaded machine adds to that); then the kept bytes are dropped and the connection can no
longer be replayed. The price: a server that says nothing until it has read a large request
(an HTTP upload without `Expect: 100-continue`) sees that request pause once, for at most
REPLAY_HOLD seconds, after its first 256 KiB.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

from portfwd.tunnel.protocol import SessionLost, TunnelError, TunnelStream

REPLAY_LIMIT = 256 * 1024  # client bytes kept for a replay; a longer request is not replayed
MAX_REPLAYS = 2  # new streams per connection
REPLAY_HOLD = 5.0  # seconds sending waits at the limit for the pod's first byte or a refusal

Reopen = Callable[[TunnelError], Awaitable[TunnelStream | None]]


class ReplayStream:
    """A :class:`~portfwd.tunnel.protocol.TunnelStream` that replays on a new stream (see the
    module's doc). `reopen(exc)` returns the new stream, or None to give up (then `exc` is
    raised as it would have been)."""

    def __init__(
        self,
        stream: TunnelStream,
        reopen: Reopen,
        elsewhere: Reopen | None = None,
        limit: int = REPLAY_LIMIT,
        hold: float = REPLAY_HOLD,
    ) -> None:
        self._stream = stream
        self.half_close = stream.half_close
        self._reopen = reopen
        self._elsewhere = elsewhere
        self._limit = limit
        self._hold = hold
        self._news: asyncio.Event | None = None  # set when the pod answered or the stream failed
        self._sent: list[bytes] | None = []  # None: no replay possible any more
        self._size = 0
        self._eof = False
        self._recovering: asyncio.Task[bool] | None = None
        self._failure: TunnelError | None = None  # a replay that could not be made
        self.replays = 0

    @property
    def server_closing(self) -> str | None:
        return self._stream.server_closing

    @property
    def error(self) -> str | None:
        return self._stream.error

    @property
    def replayable(self) -> bool:
        return self._sent is not None and self.replays < MAX_REPLAYS

    def _keep(self, data: bytes) -> None:
        sent = self._sent
        if sent is None:
            return
        if self._size + len(data) > self._limit:
            self._forget()
            return
        sent.append(data)
        self._size += len(data)

    def _forget(self) -> None:
        self._sent = None
        self._size = 0

    def _heard(self) -> None:
        """The pod answered, or the stream failed: a send held at the limit goes on."""
        if self._news is not None:
            self._news.set()

    async def _held(self, size: int) -> None:
        """At the limit before the pod answered: wait for its first byte or the stream's
        failure (then a replay may be needed), at most `hold` seconds a stream (see the
        module's doc). Returns at once when none of that applies."""
        while self._sent is not None and self._size + size > self._limit and self.replayable:
            stream = self._stream
            news = self._news = asyncio.Event()
            try:
                async with asyncio.timeout(self._hold):
                    await news.wait()
            except TimeoutError:
                return  # no word from the pod: the kept bytes go (see _keep)
            finally:
                self._news = None
            await self._settled()
            if self._stream is stream:
                return
            # Replayed on a new stream, which may be refused too: wait on it as well.

    async def send(self, data: bytes) -> None:
        await self._settled()  # kept only outside a replay, which would send it twice
        await self._held(len(data))
        self._keep(data)
        stream = self._stream
        try:
            await stream.send(data)
        except TunnelError as exc:
            if not await self._recover(stream, exc):
                raise
            # Replayed on the new stream (it was kept before the old one failed).

    async def send_eof(self) -> None:
        await self._settled()
        self._eof = True
        stream = self._stream
        try:
            await stream.send_eof()
        except TunnelError as exc:
            if not await self._recover(stream, exc):
                raise

    async def receive(self) -> bytes:
        while True:
            await self._settled(receiving=True)
            stream = self._stream
            try:
                chunk = await stream.receive()
            except TunnelError as exc:
                self._heard()
                if not await self._recover(stream, exc):
                    raise
                continue
            if chunk:
                if self._sent is not None:
                    self._forget()  # the pod answered: from here on, a loss is a loss
                self._heard()
                return chunk
            self._heard()
            if self._elsewhere is not None and self.replayable:
                # Ended without a byte: if the forward moves off this pod (it was deleted),
                # the connection goes there, with what the client sent; else the end is the
                # pod's answer.
                ended = TunnelError("the pod closed the connection before answering")
                if await self._recover(stream, ended):
                    continue
            return chunk

    async def close(self) -> None:
        await self._stream.close()

    def abort(self) -> None:
        self._heard()
        task = self._recovering
        if task is not None and not task.done():
            task.cancel()
        self._stream.abort()

    async def _settled(self, *, receiving: bool = False) -> None:
        """Wait for a replay in progress. When none could be made, sending raises what ended
        the stream; receiving goes on reading the old stream for the kubelet's own words
        (better than "closed while sending"), unless the whole session is gone."""
        task = self._recovering
        if task is not None and not task.done():
            with contextlib.suppress(Exception):
                await asyncio.shield(task)
        failure = self._failure
        if failure is not None and (not receiving or isinstance(failure, SessionLost)):
            raise failure

    async def _recover(self, failed: TunnelStream, exc: TunnelError) -> bool:
        """A new stream in place of `failed`, with everything replayed; False: given up."""
        if self._failure is not None:
            return False
        if self._stream is not failed:
            return True  # the other direction replaced it already
        task = self._recovering
        if task is None or task.done():
            if not self.replayable or (
                not isinstance(exc, SessionLost) and self._elsewhere is None
            ):
                return False
            task = self._recovering = asyncio.get_running_loop().create_task(
                self._replace(failed, exc), name="replay"
            )
        try:
            replaced = await asyncio.shield(task)
        except Exception:
            if self._failure is None:
                self._failure = exc
            raise
        if not replaced and self._failure is None:
            self._failure = exc
        return replaced

    async def _replace(self, failed: TunnelStream, exc: TunnelError) -> bool:
        # `failed` stays as it is until a new stream is in place: the other direction may
        # still read the kubelet's words from it.
        while self.replayable:
            self.replays += 1
            reopen = self._reopen if isinstance(exc, SessionLost) else self._elsewhere
            assert reopen is not None
            fresh = await reopen(exc)
            if fresh is None:
                return False
            try:
                for piece in list(self._sent or ()):
                    await fresh.send(piece)
                if self._eof:
                    await fresh.send_eof()
            except TunnelError as again:
                fresh.abort()
                exc = again
                continue
            self._stream = fresh
            self.half_close = fresh.half_close
            failed.abort()
            return True
        return False
