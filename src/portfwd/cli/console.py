"""Lines to stdout and stderr that never hold up the event loop.

`portfwd forward` prints a line per connection, like kubectl. A print on the event loop is a
blocking write: into a pipe nobody reads (`portfwd forward | slow-consumer`, a stopped
terminal), it stops every forward. A :class:`LineWriter` hands lines to a thread of its own
that writes and flushes them (many at once when they come fast); at most :data:`MAX_QUEUED`
lines wait, and beyond that lines are dropped and counted, and the count is written once the
stream moves again.

The hand-over is a `queue.SimpleQueue` (C, no Python-level Condition): with `queue.Queue`
each `put` ran a `Condition.notify` on the event loop, 8 % of the forwarder's CPU per new
connection (issue 22's profile; bench/tunnel.py, cpu/c). The thread takes what has queued up
after a pause of :data:`GATHER`, so a run of connections costs it one wake-up and one write,
not one each. Every wake-up of the thread takes the interpreter lock from the event loop:
with a 5 ms pause, connections one after another (a new one every ~1 ms) cost 0.05 ms of
p50 and 0.05 ms of CPU each (bench/tunnel.py --latency-only); with 50 ms, nothing
measurable. A line reaches the terminal about that much after its connection (later only
while the terminal does not read).
"""

from __future__ import annotations

import queue
import threading
import time
from typing import TextIO

MAX_QUEUED = 10_000
GATHER = 0.05  # s the thread lets lines gather after the first of a batch
_STOP = object()


class LineWriter:
    """Writes lines to `stream` from a daemon thread; `line` never blocks."""

    def __init__(self, stream: TextIO, name: str) -> None:
        self._stream = stream
        self._queue: queue.SimpleQueue[object] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._dropped = 0
        self._thread = threading.Thread(target=self._run, name=f"portfwd-{name}", daemon=True)
        self._thread.start()

    def line(self, text: str) -> None:
        if self._queue.qsize() >= MAX_QUEUED:
            with self._lock:
                self._dropped += 1
            return
        self._queue.put(text)

    def close(self, timeout: float = 1.0) -> None:
        """Write what is queued (waiting at most `timeout` s for a stalled stream), then stop."""
        self._queue.put(_STOP)
        self._thread.join(timeout)

    def _run(self) -> None:
        stream = self._stream
        while True:
            item = self._queue.get()
            if item is not _STOP:
                time.sleep(GATHER)  # the rest of a burst joins this write
            batch: list[str] = []
            while item is not _STOP:
                assert isinstance(item, str)
                batch.append(item)
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
            with self._lock:
                dropped, self._dropped = self._dropped, 0
            if dropped:
                batch.append(f"[portfwd: {dropped} line(s) dropped: the output was not read]")
            if batch:
                try:
                    stream.write("\n".join(batch) + "\n")
                    stream.flush()
                except (OSError, ValueError):
                    return  # the stream is gone (closed pipe): nothing more to tell it
            if item is _STOP:
                return
