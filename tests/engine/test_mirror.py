"""The front ends' copy of the engine (engine/mirror.py), shared by the daemon's client and
the engine thread: what the views read after each kind of event."""

from __future__ import annotations

from portfwd.engine.events import ForwardAdded, ForwardChanged, ForwardRemoved, LogLine, StatsTick
from portfwd.engine.mirror import LOG_MIRROR, SnapshotMirror
from portfwd.engine.model import (
    ForwardSnapshot,
    ForwardSpec,
    ForwardState,
    ForwardStats,
    LogEntry,
    LogLevel,
)


def _snap(fid: str, state: ForwardState = ForwardState.ACTIVE) -> ForwardSnapshot:
    return ForwardSnapshot(id=fid, spec=ForwardSpec(target="svc/echo", remote_port=80), state=state)


def _line(text: str) -> LogEntry:
    return LogEntry(ts=0.0, level=LogLevel.INFO, message=text)


def test_events_keep_the_copy_current() -> None:
    mirror = SnapshotMirror()
    mirror.apply(ForwardAdded(_snap("a")))
    mirror.apply(ForwardAdded(_snap("b")))
    mirror.apply(ForwardChanged(_snap("a", ForwardState.STOPPED)))
    mirror.apply(StatsTick("b", ForwardStats(bytes_in=7)))
    mirror.apply(StatsTick("gone", ForwardStats(bytes_in=1)))  # an unknown forward: ignored
    mirror.apply(LogLine("b", _line("Handling connection \x1b[31m")))
    mirror.apply(LogLine(None, _line("app-wide")))
    assert [(s.id, s.state) for s in mirror.snapshot()] == [
        ("a", ForwardState.STOPPED),
        ("b", ForwardState.ACTIVE),
    ]
    assert mirror.forwards["b"].stats.bytes_in == 7
    assert [e.message for e in mirror.log_lines("b")] == ["Handling connection \\x1b[31m"]
    assert [e.message for e in mirror.log_lines(None)] == ["app-wide"]

    mirror.apply(ForwardRemoved("b"))
    assert list(mirror.forwards) == ["a"]
    assert mirror.log_lines("b") == []  # its lines went with it


def test_a_reply_never_overrides_what_the_events_said() -> None:
    mirror = SnapshotMirror()
    mirror.apply(ForwardChanged(_snap("a", ForwardState.STOPPED)))
    mirror.learn(_snap("a", ForwardState.ACTIVE))  # an older reply overtaken by the event
    mirror.learn(_snap("new"))  # not heard of yet: kept
    assert [(s.id, s.state) for s in mirror.snapshot()] == [
        ("a", ForwardState.STOPPED),
        ("new", ForwardState.ACTIVE),
    ]


def test_logs_are_bounded_and_a_reset_keeps_them() -> None:
    mirror = SnapshotMirror()
    mirror.load_logs("a", (_line(str(i)) for i in range(LOG_MIRROR + 5)))
    mirror.apply(LogLine("a", _line("last")))
    lines = mirror.log_lines("a")
    assert len(lines) == LOG_MIRROR and lines[-1].message == "last"
    mirror.reset([_snap("a"), _snap("c")])
    assert sorted(mirror.forwards) == ["a", "c"]
    assert len(mirror.log_lines("a")) == LOG_MIRROR
