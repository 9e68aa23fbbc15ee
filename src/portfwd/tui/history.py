"""What happened to each forward while this window watched it: state changes and pod switches.

Built from the engine's snapshots as they arrive (never from log text), bounded per forward.
The detail pane shows it as the forward's reconnect history.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from portfwd.engine.model import ForwardSnapshot, ForwardState

HISTORY_SIZE = 20  # changes kept per forward


@dataclass(frozen=True)
class Change:
    ts: float  # wall clock when the view saw it
    state: ForwardState
    pod: str
    previous_pod: str  # "" unless the pod changed
    reason: str


class History:
    def __init__(self, size: int = HISTORY_SIZE) -> None:
        self._size = size
        self._last: dict[str, tuple[ForwardState, str]] = {}
        self._changes: dict[str, deque[Change]] = {}

    def observe(self, snap: ForwardSnapshot, now: float) -> None:
        """Note `snap` if its state or pod differs from the last one seen (the first one seen
        is where the history starts)."""
        last = self._last.get(snap.id)
        current = (snap.state, snap.pod)
        self._last[snap.id] = current
        if last is None or last == current:
            return
        switched = bool(snap.pod and last[1] and snap.pod != last[1])
        change = Change(now, snap.state, snap.pod, last[1] if switched else "", snap.reason)
        self._changes.setdefault(snap.id, deque(maxlen=self._size)).append(change)

    def of(self, forward_id: str) -> list[Change]:
        return list(self._changes.get(forward_id, ()))

    def forget(self, forward_id: str) -> None:
        self._last.pop(forward_id, None)
        self._changes.pop(forward_id, None)
