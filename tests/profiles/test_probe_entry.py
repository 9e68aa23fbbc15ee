"""`probe:` and `probe_interval:` in a profile entry reach the forward's spec, are checked
where they are written, and are written back by `profile save`."""

from __future__ import annotations

import pytest

from portfwd.engine.model import ForwardSpec
from portfwd.store.profiles import forward_to_node, load_text
from portfwd.store.profiles_model import profile_from_specs

TEXT = """\
version: 1
profiles:
  p:
    forwards:
      - name: web
        target: svc/web
        ports: ["8080:80"]
        probe: {probe}
        probe_interval: {interval}
"""


@pytest.mark.parametrize(("interval", "seconds"), [("10", 10.0), ("30s", 30.0), ("1m30s", 90.0)])
def test_a_probe_entry_makes_probing_specs(interval: str, seconds: float) -> None:
    loaded = load_text(TEXT.format(probe="http:/healthz", interval=interval), "p.yaml")
    assert loaded.problems == []
    profile = loaded.profiles["p"]
    [(_, spec)] = list(profile.specs())
    assert (spec.probe, spec.probe_interval) == ("http:/healthz", seconds)


@pytest.mark.parametrize(
    ("probe", "interval", "words"),
    [
        ("udp", "10s", '8:16: unknown probe "udp"'),
        ("http:healthz", "10s", '8:16: the probe\'s path "healthz" must start with /'),
        ("tcp", "0.5", "9:25: probe interval 0.5 s is out of range"),
        ("tcp", "soon", '9:25: probe interval "soon" is not a number of seconds or a duration'),
    ],
)
def test_bad_probe_entries_are_problems_where_written(
    probe: str, interval: str, words: str
) -> None:
    problems = load_text(TEXT.format(probe=probe, interval=interval), "p.yaml").problems
    assert len(problems) == 1
    where = f"{problems[0].line}:{problems[0].column}: {problems[0].message}"
    assert where.startswith(words), where


def test_save_writes_the_probe_back() -> None:
    spec = ForwardSpec(target="svc/web", remote_port=80, probe="tcp", probe_interval=30)
    (fwd,) = profile_from_specs("p", [spec]).forwards
    node = forward_to_node(fwd)
    assert node["probe"] == "tcp" and node["probe_interval"] == "30s"
    (bare,) = profile_from_specs("p", [ForwardSpec(target="svc/web", remote_port=80)]).forwards
    plain = forward_to_node(bare)
    assert "probe" not in plain and "probe_interval" not in plain
