"""Events the Manager publishes. Immutable; consumed by any number of subscribers.

Each subscriber reads its own bounded queue (see `EventBus`). The publisher never awaits a
subscriber: when a queue is full, `StatsTick`s are dropped for that subscriber and a `Lagged`
marker tells it to re-read `Manager.snapshot()`. State changes are never silently lost: a
lagging subscriber always gets `Lagged` and the snapshot has the truth.
"""

from __future__ import annotations

from dataclasses import dataclass

from portfwd.engine.model import ForwardSnapshot, ForwardStats, LogEntry


@dataclass(frozen=True)
class ForwardAdded:
    snapshot: ForwardSnapshot


@dataclass(frozen=True)
class ForwardChanged:
    """State, pod, bound addresses or spec changed (not only stats)."""

    snapshot: ForwardSnapshot


@dataclass(frozen=True)
class ForwardRemoved:
    forward_id: str


@dataclass(frozen=True)
class LogLine:
    forward_id: str | None  # None: an app-wide line
    entry: LogEntry


@dataclass(frozen=True)
class StatsTick:
    """Coalesced counters: at most a few per second per forward."""

    forward_id: str
    stats: ForwardStats


@dataclass(frozen=True)
class Lagged:
    """This subscriber fell behind and lost events: re-read the Manager's snapshot."""


Event = ForwardAdded | ForwardChanged | ForwardRemoved | LogLine | StatsTick | Lagged
