"""`http_log: true` in a profile entry reaches the forward's spec, is checked, is written back
when a profile is saved (from the dashboard's forwards too), and import/export keep it."""

from __future__ import annotations

import json

import pytest

from portfwd.engine.model import ForwardSpec
from portfwd.store.profiles import forward_to_node, load_text
from portfwd.store.profiles_model import profile_from_specs
from portfwd.transfer.export import export_kubectl, from_yaml, to_yaml
from portfwd.transfer.kftray_json import export_kftray, parse_kftray_json

TEXT = """\
version: 1
profiles:
  p:
    forwards:
      - name: web
        target: svc/web
        ports: ["8080:80"]
        http_log: {value}
"""


def test_an_http_log_entry_makes_logged_specs_and_is_written_back() -> None:
    loaded = load_text(TEXT.format(value="true"), "p.yaml")
    assert loaded.problems == []
    profile = loaded.profiles["p"]
    [(_, spec)] = list(profile.specs())
    assert spec.http_log
    assert forward_to_node(profile.forwards[0])["http_log"] is True
    plain = load_text(TEXT.format(value="false"), "p.yaml").profiles["p"]
    assert not next(iter(plain.specs()))[1].http_log
    assert "http_log" not in forward_to_node(plain.forwards[0])


def test_a_bad_http_log_value_is_a_problem_on_its_line() -> None:
    problems = load_text(TEXT.format(value="'yes'"), "p.yaml").problems
    assert len(problems) == 1
    assert "http_log must be true or false" in problems[0].message
    assert problems[0].line == 8


def test_saving_the_dashboard_forwards_as_a_profile_keeps_it() -> None:
    spec = ForwardSpec(target="svc/web", remote_port=80, http_log=True, name="web")
    profile = profile_from_specs("p", [spec])
    assert profile.forwards[0].http_log
    assert [s.http_log for _, s in profile.specs()] == [True]


def test_the_yaml_list_and_kftray_json_keep_it_and_kubectl_says_it_cannot() -> None:
    specs = [
        ForwardSpec(target="svc/web", remote_port=80, namespace="d", http_log=True, name="w"),
        ForwardSpec(target="svc/db", remote_port=5432, namespace="d", name="db"),
    ]
    text = to_yaml(specs)
    assert text.count("http_log: true") == 1
    assert from_yaml(text, "f.yaml") == specs

    kftray = export_kftray(specs).text
    assert [e.get("http_logs_enabled") for e in json.loads(kftray)] == [True, None]
    back = parse_kftray_json(kftray, "f.json")
    assert [s.http_log for s in back.specs] == [True, False]

    notes = [str(n) for n in export_kubectl(specs).notes]
    assert any("w" in n and "HTTP request log" in n for n in notes)


@pytest.mark.parametrize("value", ["true", '"true"'])
def test_kftray_http_logs_enabled_turns_the_log_on(value: str) -> None:
    result = parse_kftray_json(
        f'{{"service": "web", "namespace": "d", "remote_port": 80, "http_logs_enabled": {value}}}'
    )
    assert [s.http_log for s in result.specs] == [True]
