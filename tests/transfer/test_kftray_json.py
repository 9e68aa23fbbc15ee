"""kftray's JSON export -> forwards, and back: the round trip gives the same forwards."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from portfwd.engine.model import ForwardSpec
from portfwd.transfer.kftray_json import export_kftray, parse_kftray_json
from portfwd.transfer.result import Unreadable

DATA = Path(__file__).parent / "data"


def test_the_exported_file() -> None:
    result = parse_kftray_json((DATA / "kftray_export.json").read_text(), "configs.json")
    assert result.specs == [
        ForwardSpec(
            target="svc/postgres",
            remote_port=5432,
            local_port=5432,
            namespace="payments",
            context="prod-eu",
            kubeconfig=None,  # "default": the default kubeconfig
            addresses=("127.0.0.1",),
            name="pg",
        ),
        ForwardSpec(
            target="svc/payments-api",
            remote_port=8080,
            local_port=8080,
            namespace="payments",
            context="prod-eu",
            kubeconfig="/home/me/.kube/prod",
            addresses=("127.0.0.2",),
            name="api",
        ),
        ForwardSpec(
            target="svc/grafana",
            remote_port="http",
            local_port=3000,
            namespace="monitoring",
            context="prod-eu",
            addresses=("127.0.0.1",),
            name="api-2",  # the alias "api" was taken
        ),
        ForwardSpec(  # placeholders count as not set; no local_port: a free one
            target="svc/web",
            remote_port=80,
            local_port=0,
            namespace=None,
            context=None,
            addresses=("127.0.0.1",),
            name="web-80",
        ),
    ]
    reasons = {s.source: s.reason for s in result.skipped}
    assert set(reasons) == {f"configs.json[{i}]" for i in range(4, 11)}
    assert "label (app=debug-shell)" in reasons["configs.json[4]"]
    assert "proxy" in reasons["configs.json[5]"]
    assert "redis.abc.cache.amazonaws.com" in reasons["configs.json[5]"]
    assert "UDP" in reasons["configs.json[6]"]
    assert "expose" in reasons["configs.json[7]"]
    assert 'domain_enabled "yes" is not a boolean' in reasons["configs.json[8]"]
    assert "no remote_port" in reasons["configs.json[9]"]
    assert "JSON object" in reasons["configs.json[10]"]
    notes = [str(n) for n in result.notes]
    assert any("configs.json[0]" in n and "hosts-file" in n for n in notes)
    assert any("configs.json[2]" in n and "api-2" in n for n in notes)
    assert any("Service's port" in n for n in notes)  # the one difference of meaning


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ('[{"alias": "a",\n "service": }]', "f.json:2:13"),
        ("", "f.json:1:1"),
        ('"just a string"', "f.json:1"),
    ],
)
def test_a_file_that_is_not_a_kftray_export_is_unreadable(text: str, where: str) -> None:
    with pytest.raises(Unreadable, match=where):
        parse_kftray_json(text, "f.json")


def test_string_booleans_and_a_single_object() -> None:
    result = parse_kftray_json(
        json.dumps(
            {
                "service": "web",
                "namespace": "d",
                "remote_port": "8080",
                "local_port": "18080",
                "auto_loopback_address": "true",
                "http_logs_enabled": "true",
                "domain_enabled": "false",
            }
        )
    )
    (spec,) = result.specs
    assert (spec.local_port, spec.remote_port) == (18080, 8080)
    notes = " ".join(str(n) for n in result.notes)
    assert "auto_loopback_address" in notes and "http_logs_enabled" in notes
    assert spec.http_log  # kftray's HTTP logs: portfwd's request log
    assert "hosts-file" not in notes


def test_export_lists_what_kftray_cannot_hold() -> None:
    specs = [
        ForwardSpec(target="svc/web", remote_port=80, local_port=8080, namespace="d", name="w"),
        ForwardSpec(target="deploy/api", remote_port=80, namespace="d", name="api"),
        ForwardSpec(
            target="svc/db",
            remote_port=5432,
            addresses=("localhost",),
            reconnect=False,
            name="db",
        ),
    ]
    out = export_kftray(specs)
    data = json.loads(out.text)
    assert [e["alias"] for e in data] == ["w", "db"]
    assert data[0] == {
        "service": "web",
        "namespace": "d",
        "local_port": 8080,
        "remote_port": 80,
        "workload_type": "service",
        "protocol": "tcp",
        "alias": "w",
    }
    assert [s.source for s in out.skipped] == ["api"]
    notes = " ".join(str(n) for n in out.notes)
    assert "localhost" in notes and "always reconnects" in notes and "namespace" in notes


# --- the round trip --------------------------------------------------------------------------

_dns = st.from_regex(r"[a-z]([a-z0-9-]{0,10}[a-z0-9])?", fullmatch=True)
_port = st.integers(min_value=1, max_value=65535)
_bool = st.sampled_from([True, False, "true", "false", None])


@st.composite
def _kftray_entry(draw: st.DrawFn) -> dict[str, Any]:
    entry: dict[str, Any] = {"service": draw(_dns)}
    if draw(st.booleans()):
        entry["workload_type"] = "service"
    entry["namespace"] = draw(st.sampled_from(["", "default-namespace"]) | _dns)
    if draw(st.booleans()):
        entry["local_port"] = draw(st.integers(min_value=0, max_value=65535))
    entry["remote_port"] = draw(_port | st.sampled_from(["http", "grpc", "metrics-1"]))
    for key, values in (
        ("context", st.sampled_from(["current-context", "kind-a", "prod/eu", "ctx with space"])),
        ("kubeconfig", st.sampled_from(["default", "/k/a", "~/.kube/b"])),
        ("local_address", st.sampled_from(["127.0.0.1", "127.0.0.5", "0.0.0.0", "::1"])),
        ("alias", st.sampled_from(["web", "web", "api", "my alias", "x.y_z"])),
        ("protocol", st.sampled_from(["tcp", "TCP", ""])),
        ("domain_enabled", _bool),
        ("auto_loopback_address", st.booleans()),
        ("id", st.integers(min_value=1, max_value=99)),
    ):
        if draw(st.booleans()):
            entry[key] = draw(values)
    return entry


_skipped_entry = st.sampled_from(
    [
        {"service": "dns", "protocol": "udp", "remote_port": 53},
        {"workload_type": "pod", "target": "app=x", "remote_port": 1, "protocol": "tcp"},
        {"workload_type": "proxy", "remote_address": "db", "remote_port": 5432},
        {"workload_type": "expose", "local_port": 3000},
    ]
)


@settings(max_examples=75, deadline=None)
@given(st.lists(_kftray_entry() | _skipped_entry, max_size=12))
def test_kftray_json_import_export_import_gives_the_same_forwards(
    entries: list[dict[str, Any]],
) -> None:
    first = parse_kftray_json(json.dumps(entries), "a.json")
    assert len(first.specs) + len(first.skipped) == len(entries)  # nothing dropped
    exported = export_kftray(first.specs)
    assert exported.skipped == []  # every imported forward is a service forward
    second = parse_kftray_json(exported.text, "b.json")
    assert second.skipped == []
    assert second.specs == first.specs
