"""Textual messages: the engine's events, carried into the UI's message queue.

One worker reads the Manager's subscription and posts these; widgets never poll the engine.
"""

from __future__ import annotations

from collections import deque

from textual.message import Message

from portfwd.engine.model import ForwardSnapshot, ForwardStats, LogEntry


class ForwardUpdated(Message):
    """A forward was added or changed (state, pod, bound address, spec)."""

    def __init__(self, snapshot: ForwardSnapshot) -> None:
        super().__init__()
        self.snapshot = snapshot


class ForwardGone(Message):
    def __init__(self, forward_id: str) -> None:
        super().__init__()
        self.forward_id = forward_id


class StatsBatch(Message):
    """Latest counters per forward. The worker keeps adding to `stats` until the app takes
    the batch, so at most one is queued however fast ticks arrive."""

    def __init__(self, stats: dict[str, ForwardStats]) -> None:
        super().__init__()
        self.stats = stats


class LogBatch(Message):
    """Log lines, batched like `StatsBatch` and bounded (a flood keeps the newest lines)."""

    def __init__(self, entries: deque[tuple[str | None, LogEntry]]) -> None:
        super().__init__()
        self.entries = entries


class Resync(Message):
    """The event stream lagged: re-read the whole snapshot."""


class ForwardCreated(Message):
    """The picker created forwards (ids), so the dashboard can select the first one."""

    def __init__(self, forward_ids: list[str]) -> None:
        super().__init__()
        self.forward_ids = forward_ids
