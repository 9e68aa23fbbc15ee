"""The health facts and the probe cross the daemon's socket, the session file and
`ls -o json` unchanged (engine/serial.py), every field of HealthFacts included."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from portfwd.engine.model import ForwardSnapshot, ForwardSpec, ForwardState, HealthFacts
from portfwd.engine.serial import (
    health_from_dict,
    health_to_dict,
    snapshot_from_dict,
    snapshot_to_dict,
    spec_from_dict,
    spec_to_dict,
)
from portfwd.errors import InputError

times = st.none() | st.floats(0, 2e9)


def _field(name: str, default: Any) -> st.SearchStrategy[Any]:
    if isinstance(default, str):
        return st.text(max_size=40)
    if name in ("pod_ready", "probe_ok"):
        return st.none() | st.booleans()
    return times


facts = st.builds(
    HealthFacts,
    **{f.name: _field(f.name, f.default) for f in dataclasses.fields(HealthFacts)},
)
probes = st.sampled_from(["", "tcp", "http:/", "http:/healthz", "http:/a/b?c=d"])
specs = st.builds(
    ForwardSpec,
    target=st.just("svc/web"),
    remote_port=st.just(80),
    probe=probes,
    probe_interval=st.floats(1, 3600),
)


def _through_json(data: object) -> Any:
    return json.loads(json.dumps(data))


@settings(max_examples=200, deadline=None)
@given(facts)
def test_every_fact_survives_json(value: HealthFacts) -> None:
    assert health_from_dict(_through_json(health_to_dict(value))) == value
    assert set(health_to_dict(value)) == {f.name for f in dataclasses.fields(HealthFacts)}


@settings(max_examples=100, deadline=None)
@given(specs, facts, st.sampled_from(list(ForwardState)))
def test_snapshots_with_probe_and_health_survive_json(
    spec: ForwardSpec, value: HealthFacts, state: ForwardState
) -> None:
    snap = ForwardSnapshot(id="abc", spec=spec, state=state, health=value)
    assert snapshot_from_dict(_through_json(snapshot_to_dict(snap))) == snap
    assert spec_from_dict(_through_json(spec_to_dict(spec)), strict=True) == spec


def test_a_snapshot_without_health_reads_back_with_none_known() -> None:
    data = snapshot_to_dict(ForwardSnapshot("abc", ForwardSpec("svc/web", 80), ForwardState.ACTIVE))
    del data["health"]  # an older daemon's answer
    assert snapshot_from_dict(data).health == HealthFacts()


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"probe": "udp"}, 'unknown probe "udp"; use tcp, or http:/PATH'),
        ({"probe": "http:healthz"}, "must start with /"),
        ({"probe": "http:/a\x1bb"}, "no spaces or control characters"),
        ({"probe": "tcp", "probe_interval": 0.5}, "probe interval 0.5 s is out of range"),
        ({"probe": "tcp", "probe_interval": "10s"}, "is not a number of seconds"),
    ],
)
def test_bad_probes_are_one_line(data: dict[str, object], message: str) -> None:
    with pytest.raises(InputError, match=message.replace("?", r"\?")) as caught:
        spec_from_dict({"target": "svc/web", "remote_port": 80, **data})
    assert "\n" not in str(caught.value) and "\x1b" not in str(caught.value)


def test_bad_health_values_are_refused() -> None:
    with pytest.raises(InputError, match="probe_ok must be true or false"):
        health_from_dict({"probe_ok": "yes"})
    with pytest.raises(InputError, match="ping_rtt must be a number"):
        health_from_dict({"ping_rtt": "3ms"})
