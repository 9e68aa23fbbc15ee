"""The one serialiser: every engine value survives plain data (JSON) and comes back equal."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from portfwd.engine.events import (
    ForwardAdded,
    ForwardChanged,
    ForwardRemoved,
    Lagged,
    LogLine,
    StatsTick,
)
from portfwd.engine.model import (
    ConnectionInfo,
    ForwardSnapshot,
    ForwardSpec,
    ForwardState,
    ForwardStats,
    LogEntry,
    LogKind,
    LogLevel,
)
from portfwd.engine.serial import (
    connection_from_dict,
    connection_to_dict,
    event_from_dict,
    event_to_dict,
    snapshot_from_dict,
    snapshot_to_dict,
    spec_from_dict,
    spec_to_dict,
)
from portfwd.engine.traffic import FAILURE_REASONS
from portfwd.errors import InputError

names = st.from_regex(r"[a-z]([a-z0-9-]{0,18}[a-z0-9])?", fullmatch=True)
specs = st.builds(
    ForwardSpec,
    target=st.builds(lambda k, n: f"{k}/{n}", st.sampled_from(["svc", "pod", "deploy"]), names),
    remote_port=st.one_of(st.integers(1, 65535), st.sampled_from(["http", "https", "db-1"])),
    local_port=st.integers(0, 65535),
    namespace=st.none() | names,
    context=st.none() | names,
    kubeconfig=st.none() | st.just("/home/u/.kube/config"),
    addresses=st.sampled_from([("127.0.0.1",), ("localhost",), ("127.0.0.1", "::1")]),
    reconnect=st.booleans(),
    protocol=st.sampled_from(["auto", "websocket", "spdy", "v4"]),
    name=st.none() | names,
    lazy=st.booleans(),
    idle_after=st.sampled_from([600.0, 0.25, 90, 3600.5]),
    idle_stop=st.sampled_from([0.0, 1800, 0.5]),
)
rates = st.floats(0, 2**40, allow_nan=False)
seconds = st.none() | st.floats(0, 2e9, allow_nan=False)
stats = st.builds(
    ForwardStats,
    *(st.integers(0, 2**40) for _ in range(6)),
    *(rates for _ in range(4)),
    failures=st.lists(
        st.tuples(st.sampled_from(FAILURE_REASONS), st.integers(1, 2**40)),
        unique_by=lambda kv: kv[0],
    ).map(tuple),
    open_p50=seconds,
    open_p99=seconds,
    first_byte_p50=seconds,
    first_byte_p99=seconds,
    history_in=st.lists(st.integers(0, 2**40), max_size=300).map(tuple),
    history_out=st.lists(st.integers(0, 2**40), max_size=300).map(tuple),
    sampled_at=seconds,
    open_count=st.integers(0, 2**40),
    open_sum=rates,
    first_byte_count=st.integers(0, 2**40),
    first_byte_sum=rates,
)
snapshots = st.builds(
    ForwardSnapshot,
    id=names,
    spec=specs,
    state=st.sampled_from(list(ForwardState)),
    context=names,
    namespace=names,
    pod=names,
    remote_port=st.integers(0, 65535),
    port_name=st.just("") | names,
    bound=st.lists(st.tuples(st.sampled_from(["127.0.0.1", "::1"]), st.integers(1, 65535))).map(
        tuple
    ),
    reason=st.text(max_size=40),
    started_at=st.none() | st.floats(0, 2e9),
    stats=stats,
    attempt=st.integers(0, 100),
    next_retry_at=st.none() | st.floats(0, 2e9),
)
entries = st.builds(
    LogEntry,
    ts=st.floats(0, 2e9),
    level=st.sampled_from(list(LogLevel)),
    message=st.text(max_size=60),
    kind=st.sampled_from(list(LogKind)),
)
events = st.one_of(
    st.builds(ForwardAdded, snapshots),
    st.builds(ForwardChanged, snapshots),
    st.builds(ForwardRemoved, names),
    st.builds(LogLine, st.none() | names, entries),
    st.builds(StatsTick, names, stats),
    st.just(Lagged()),
)


def _through_json(data: object) -> object:
    return json.loads(json.dumps(data))


@settings(max_examples=200, deadline=None)
@given(specs)
def test_specs_survive_json(spec: ForwardSpec) -> None:
    assert spec_from_dict(_through_json(spec_to_dict(spec)), strict=True) == spec


@settings(max_examples=100, deadline=None)
@given(snapshots)
def test_snapshots_survive_json(snap: ForwardSnapshot) -> None:
    assert snapshot_from_dict(_through_json(snapshot_to_dict(snap))) == snap


@settings(max_examples=200, deadline=None)
@given(events)
def test_events_survive_json(event: object) -> None:
    assert event_from_dict(_through_json(event_to_dict(event))) == event  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "info",
    [
        ConnectionInfo("127.0.0.1:5000", "web-1", 1.5, 10, 20),
        ConnectionInfo("[::1]:5000", "web-1", 1.5, 10, 20, 1e6, 2.5, 3e5, 0.0, 0.012, 0.3),
    ],
)
def test_connections_survive_json(info: ConnectionInfo) -> None:
    assert connection_from_dict(_through_json(connection_to_dict(info))) == info


def test_every_stats_field_crosses() -> None:
    """A field added to ForwardStats without a line in serial.py would silently read back
    as its default: every field's name is written."""
    from dataclasses import fields

    written = set(event_to_dict(StatsTick("f", ForwardStats()))["stats"])
    assert written == {f.name for f in fields(ForwardStats)}
    written = set(connection_to_dict(ConnectionInfo("p", "pod", 0.0, 0, 0)))
    assert written == {f.name for f in fields(ConnectionInfo)}


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"target": "svc/web"}, "a forward needs a remote_port"),
        ({"remote_port": 80}, "a forward needs a target"),
        ({"target": "svc/web", "remote_port": 80, "namspace": "x"}, "unknown field 'namspace'"),
        ({"target": "svc/web", "remote_port": 80, "reconnect": "no"}, "bad reconnect"),
        ({"target": "svc/web", "remote_port": 99999}, "remote port 99999 is out of range"),
        ({"target": "svc/web", "remote_port": 80, "name": "has space"}, "forward name"),
        ({"target": "svc/web", "remote_port": 80, "protocol": "h2"}, "unknown protocol"),
        ({"target": "svc/web", "remote_port": 80, "lazy": "yes"}, "bad lazy"),
        ({"target": "svc/web", "remote_port": 80, "idle_after": 0}, "idle_after 0 is out of"),
        ({"target": "svc/web", "remote_port": 80, "idle_stop": "1h"}, 'idle_stop "1h" is not'),
        ({"target": "svc/web", "remote_port": 80, "idle_stop": -1}, "idle_stop -1 is out of"),
    ],
)
def test_bad_specs_are_one_line_naming_the_field(data: dict[str, object], message: str) -> None:
    with pytest.raises(InputError, match=message):
        spec_from_dict(data, strict=True)
