"""A front end's copy of the engine's forwards and recent log lines, kept by its events.

Both engines that live elsewhere, the daemon's (`portfwd.daemon.client.RemoteEngine`) and the
one on a thread of its own (`portfwd.engine.host.ThreadedEngine`), answer reads from such a
copy: a read never waits for the engine nor touches its objects from the wrong side. What a
`Lagged` means differs between them (ask the daemon again, or the engine's thread), so that
one is left to the owner.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import replace

from portfwd.engine.events import (
    Event,
    ForwardAdded,
    ForwardChanged,
    ForwardRemoved,
    LogLine,
    StatsTick,
)
from portfwd.engine.model import ForwardSnapshot, LogEntry

LOG_MIRROR = 1000  # lines kept per forward (the engine keeps as many)


class SnapshotMirror:
    def __init__(self) -> None:
        self.forwards: dict[str, ForwardSnapshot] = {}
        self.logs: dict[str | None, deque[LogEntry]] = {}

    def reset(self, snapshots: Iterable[ForwardSnapshot]) -> None:
        """Start again from these snapshots (the log lines are kept)."""
        self.forwards = {snap.id: snap for snap in snapshots}

    def load_logs(self, forward_id: str | None, entries: Iterable[LogEntry]) -> None:
        self.logs[forward_id] = deque(entries, maxlen=LOG_MIRROR)

    def apply(self, event: Event) -> None:
        """Follow one event; events that change no forward or log (Lagged...) are ignored."""
        if isinstance(event, ForwardAdded | ForwardChanged):
            self.forwards[event.snapshot.id] = event.snapshot
        elif isinstance(event, ForwardRemoved):
            self.forwards.pop(event.forward_id, None)
            self.logs.pop(event.forward_id, None)
        elif isinstance(event, StatsTick):
            snap = self.forwards.get(event.forward_id)
            if snap is not None:
                self.forwards[snap.id] = replace(snap, stats=event.stats)
        elif isinstance(event, LogLine):
            lines = self.logs.get(event.forward_id)
            if lines is None:
                lines = self.logs[event.forward_id] = deque(maxlen=LOG_MIRROR)
            lines.append(event.entry)

    def learn(self, snap: ForwardSnapshot) -> None:
        """A forward known from a reply: kept only if the events have not told of it yet."""
        self.forwards.setdefault(snap.id, snap)

    def snapshot(self) -> list[ForwardSnapshot]:
        return list(self.forwards.values())

    def log_lines(self, forward_id: str | None) -> list[LogEntry]:
        return list(self.logs.get(forward_id, ()))
