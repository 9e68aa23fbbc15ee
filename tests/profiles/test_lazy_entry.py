"""`lazy`, `idle_after` and `idle_stop` in a profile entry reach the forward's spec, are
checked where they are written, and are written back as durations."""

from __future__ import annotations

import pytest

from portfwd.engine.model import ForwardSpec
from portfwd.store.profiles import forward_to_node, load_text
from portfwd.store.profiles_model import Profile, profile_from_specs

TEXT = """\
version: 1
profiles:
  p:
    forwards:
      - name: web
        target: svc/web
        ports: ["8080:80"]
{fields}
"""


def _spec(fields: str) -> tuple[Profile, ForwardSpec]:
    loaded = load_text(TEXT.format(fields=fields), "p.yaml")
    assert loaded.problems == []
    profile = loaded.profiles["p"]
    [(_, spec)] = list(profile.specs())
    return profile, spec


def test_lazy_fields_make_lazy_specs_and_write_back() -> None:
    profile, spec = _spec("        lazy: true\n        idle_after: 5m\n        idle_stop: 1h30m")
    assert (spec.lazy, spec.idle_after, spec.idle_stop) == (True, 300.0, 5400.0)
    node = forward_to_node(profile.forwards[0])
    assert (node["lazy"], node["idle_after"], node["idle_stop"]) == (True, "5m", "1h30m")


def test_idle_after_alone_means_lazy_and_idle_stop_alone_does_not() -> None:
    assert _spec("        idle_after: 45s")[1].lazy
    _, spec = _spec("        idle_stop: 30m")
    assert not spec.lazy and spec.idle_stop == 1800.0


def test_a_lazy_spec_becomes_a_lazy_entry() -> None:
    _, spec = _spec("        lazy: true\n        idle_stop: 30m")
    [entry] = profile_from_specs("saved", [spec]).forwards
    assert entry.lazy and entry.idle_after is None and entry.idle_stop == 1800.0


@pytest.mark.parametrize(
    ("fields", "words"),
    [
        ("        lazy: 'yes'", "lazy must be true or false"),
        ("        idle_after: 10", "idle_after must be a duration such as 10m"),
        ("        idle_stop: soon", "idle_stop must be a duration such as 10m"),
    ],
)
def test_bad_lazy_fields_are_problems(fields: str, words: str) -> None:
    problems = load_text(TEXT.format(fields=fields), "p.yaml").problems
    assert len(problems) == 1 and words in problems[0].message
