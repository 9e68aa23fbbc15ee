"""engine/logring.py: the log ring reads as the bounded deque it replaced, connection lines
included, whatever the mix and however often it wrapped."""

from __future__ import annotations

from collections import deque

import pytest
from hypothesis import given
from hypothesis import strategies as st

from portfwd.engine.logring import LogRing, connection_text
from portfwd.engine.model import LogEntry, LogKind, LogLevel

# A line: a note (its text) or a connection (its port).
lines = st.lists(
    st.one_of(
        st.text(max_size=20).map(lambda t: ("note", t)),
        st.integers(1, 65535).map(lambda p: ("conn", p)),
    ),
    max_size=60,
)


@given(size=st.integers(1, 12), ops=lines)
def test_the_ring_reads_like_a_bounded_deque(size: int, ops: list[tuple[str, object]]) -> None:
    ring, model = LogRing(size), deque[LogEntry](maxlen=size)
    for i, (kind, value) in enumerate(ops):
        if kind == "note":
            entry = LogEntry(float(i), LogLevel.WARNING, str(value))
            ring.append(entry)
        else:
            assert isinstance(value, int)
            ring.add_connection(float(i), value)
            entry = LogEntry(float(i), LogLevel.INFO, connection_text(value), LogKind.CONNECTION)
        model.append(entry)
        assert len(ring) == len(model)
    assert list(ring) == list(model)


def test_a_connection_line_is_kubectls() -> None:
    ring = LogRing(2)
    ring.add_connection(5.0, 8080)
    (entry,) = list(ring)
    assert entry == LogEntry(5.0, LogLevel.INFO, "Handling connection for 8080", LogKind.CONNECTION)


def test_an_empty_ring_is_refused() -> None:
    with pytest.raises(ValueError, match="at least one line"):
        LogRing(0)
