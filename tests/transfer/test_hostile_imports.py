"""Imports that used to end in a traceback (kftray JSON nested 5,000 deep: RecursionError; a
50,000-digit port: ValueError) are one line; namespaces and contexts that are not valid names
(`de'mo`) are refused with the rule instead of being written into profiles."""

from __future__ import annotations

import contextlib
import json
import sys
from pathlib import Path

import pytest

from portfwd.transfer.kftray_json import parse_kftray_json
from portfwd.transfer.kubectl_lines import parse_kubectl_lines
from portfwd.transfer.result import Unreadable
from portfwd.transfer.scope import check_scope
from tests.support.cli import portfwd_async


def test_json_nested_5000_deep_is_unreadable_in_one_line() -> None:
    with pytest.raises(Unreadable) as err:
        parse_kftray_json("[" * 5000 + "]" * 5000, "deep.json")
    assert str(err.value) == (
        "deep.json: not a kftray export: nested too deeply (a kftray export is an array of"
        " flat objects)"
    )


def test_a_50000_digit_port_is_unreadable_in_one_line() -> None:
    text = '[{"service": "web", "remote_port": 80, "local_port": ' + "9" * 50_000 + "}]"
    with pytest.raises(Unreadable) as err:
        parse_kftray_json(text, "huge.json")
    assert str(err.value) == "huge.json: not a kftray export: a number with 50,000 digits"


def test_an_entry_loaded_just_under_the_depth_limit_is_skipped_not_a_traceback() -> None:
    depth = sys.getrecursionlimit() - 60
    with contextlib.suppress(Unreadable):  # refused whole: fine too
        parse_kftray_json("[" * depth + "]" * depth, "deep.json")


@pytest.mark.parametrize(
    ("line", "said"),
    [
        ('kubectl port-forward -n "de\'mo" svc/web 8080:80', 'namespace "de\'mo" is not valid'),
        ("kubectl port-forward -n Demo svc/web 8080:80", 'namespace "Demo" is not valid'),
        ("kubectl port-forward -n -demo svc/web 8080:80", "namespace"),
        ("kubectl port-forward --context 'a b' svc/web 8080:80", 'context "a b" is not valid'),
        ("kubectl port-forward --context 'x;rm' svc/web 8080:80", 'context "x;rm" is not valid'),
    ],
)
def test_kubectl_lines_with_invalid_names_are_skipped_with_the_rule(line: str, said: str) -> None:
    result = parse_kubectl_lines(line, "cmds.txt")
    assert result.specs == []
    (skipped,) = result.skipped
    assert said in skipped.reason, skipped
    assert "letters" in skipped.reason  # the rule


def test_kftray_entries_with_invalid_names_are_skipped_with_the_rule() -> None:
    entries = [
        {"service": "web", "remote_port": 80, "namespace": "de'mo"},
        {"service": "web", "remote_port": 81, "context": "a\nb"},
        {"service": "web", "remote_port": 82, "namespace": "demo", "context": "kind-kind"},
    ]
    result = parse_kftray_json(json.dumps(entries), "kf.json")
    assert [s.remote_port for s in result.specs] == [82]
    reasons = [s.reason for s in result.skipped]
    assert 'namespace "de\'mo" is not valid: a namespace is up to 63' in reasons[0]
    assert 'context "a\\nb" is not valid' in reasons[1]


@pytest.mark.parametrize(
    "context",
    ["kind-kind", "gke_proj_us-east1_c1", "arn:aws:eks:us-east-1:1234:cluster/x", "me@prod"],
)
def test_real_context_names_pass(context: str) -> None:
    check_scope("kube-system", context)


@pytest.mark.parametrize("name", ["deep", "huge"])
async def test_the_cli_prints_one_line(tmp_path: Path, name: str) -> None:
    path = tmp_path / f"{name}.json"
    if name == "deep":
        path.write_text("[" * 5000 + "]" * 5000)
    else:
        path.write_text('[{"service": "web", "remote_port": ' + "7" * 50_000 + "}]")
    code, out, err = await portfwd_async("import", "--format", "kftray", str(path), limit=60)
    assert code != 0 and out == ""
    assert err.startswith("error: ") and err.count("\n") == 1, err
