"""`spread: true` in a profile entry reaches the forward's spec, and is checked."""

from __future__ import annotations

import pytest

from portfwd.engine.model import ForwardSpec
from portfwd.engine.serial import spec_from_dict, spec_to_dict
from portfwd.errors import InputError
from portfwd.store.profiles import forward_to_node, load_text

TEXT = """\
version: 1
profiles:
  p:
    forwards:
      - name: web
        target: svc/web
        ports: ["8080:80"]
        spread: {spread}
"""


def test_a_spread_entry_makes_spread_specs() -> None:
    loaded = load_text(TEXT.format(spread="true"), "p.yaml")
    assert loaded.problems == []
    profile = loaded.profiles["p"]
    [(_, spec)] = list(profile.specs())
    assert spec.spread
    assert forward_to_node(profile.forwards[0])["spread"] is True


@pytest.mark.parametrize(
    ("text", "words"),
    [
        (TEXT.format(spread="'yes'"), "spread must be true or false"),
        (TEXT.format(spread="true").replace("svc/web", "pod/toolbox"), "is one pod"),
    ],
)
def test_bad_spread_entries_are_problems(text: str, words: str) -> None:
    problems = load_text(text, "p.yaml").problems
    assert len(problems) == 1 and words in problems[0].message


def test_spread_round_trips_and_is_refused_for_a_pod() -> None:
    spec = ForwardSpec(target="svc/web", remote_port=80, spread=True)
    assert spec_to_dict(spec)["spread"] is True
    assert spec_from_dict(spec_to_dict(spec), strict=True) == spec
    assert "spread" not in spec_to_dict(ForwardSpec(target="svc/web", remote_port=80))
    with pytest.raises(InputError, match="is one pod"):
        ForwardSpec(target="toolbox", remote_port=80, spread=True)
