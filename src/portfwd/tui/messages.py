"""Textual messages: the engine's events, carried into the UI's message queue.

One worker reads the Manager's subscription and posts these; widgets never poll the engine.
"""

from __future__ import annotations

from textual.message import Message

from portfwd.engine.model import ForwardSnapshot, ForwardStats, LogEntry


class ForwardUpdated(Message):
    """A forward was added or changed (state, pod, bound address, spec)."""

    def __init__(self, snapshot: ForwardSnapshot, *, added: bool = False) -> None:
        super().__init__()
        self.snapshot = snapshot
        self.added = added


class ForwardGone(Message):
    def __init__(self, forward_id: str) -> None:
        super().__init__()
        self.forward_id = forward_id


class StatsUpdated(Message):
    def __init__(self, forward_id: str, stats: ForwardStats) -> None:
        super().__init__()
        self.forward_id = forward_id
        self.stats = stats


class LogReceived(Message):
    def __init__(self, forward_id: str | None, entry: LogEntry) -> None:
        super().__init__()
        self.forward_id = forward_id
        self.entry = entry


class Resync(Message):
    """The event stream lagged: re-read the whole snapshot."""


class ForwardCreated(Message):
    """The picker created forwards (ids), so the dashboard can select the first one."""

    def __init__(self, forward_ids: list[str]) -> None:
        super().__init__()
        self.forward_ids = forward_ids
