"""The documented example is a valid profiles file, for portfwd and for its JSON Schema."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML

from portfwd.store.profiles import load_text
from portfwd.store.profiles_schema import example_text, schema


def _errors(value: Any, sch: dict[str, Any], root: dict[str, Any], where: str = "$") -> list[str]:
    """A small JSON Schema check: the keywords portfwd's schema uses, nothing more."""
    if "$ref" in sch:
        name = sch["$ref"].removeprefix("#/$defs/")
        return _errors(value, root["$defs"][name], root, where)
    out: list[str] = []
    if "oneOf" in sch:
        matches = sum(not _errors(value, s, root, where) for s in sch["oneOf"])
        if matches != 1:
            out.append(f"{where}: matches {matches} of oneOf")
    kind = sch.get("type")
    types = {
        "object": dict,
        "array": list,
        "string": str,
        "integer": int,
        "boolean": bool,
    }
    if kind is not None:
        ok = isinstance(value, types[kind]) and not (kind == "integer" and isinstance(value, bool))
        if not ok:
            return [*out, f"{where}: not {kind}"]
    if "const" in sch and value != sch["const"]:
        out.append(f"{where}: not {sch['const']!r}")
    if isinstance(value, str):
        if len(value) < sch.get("minLength", 0):
            out.append(f"{where}: too short")
        if "pattern" in sch and not re.search(sch["pattern"], value):
            out.append(f"{where}: {value!r} does not match {sch['pattern']}")
    number = isinstance(value, int) and not isinstance(value, bool)
    if number and not sch.get("minimum", value) <= value <= sch.get("maximum", value):
        out.append(f"{where}: out of range")
    if isinstance(value, list):
        if len(value) < sch.get("minItems", 0):
            out.append(f"{where}: too few items")
        for i, item in enumerate(value):
            if "items" in sch:
                out += _errors(item, sch["items"], root, f"{where}[{i}]")
    if isinstance(value, dict):
        props = sch.get("properties", {})
        for key in sch.get("required", []):
            if key not in value:
                out.append(f"{where}: {key} missing")
        for key, item in value.items():
            if "propertyNames" in sch:
                out += _errors(key, sch["propertyNames"], root, f"{where} key {key}")
            if key in props:
                out += _errors(item, props[key], root, f"{where}.{key}")
            elif sch.get("additionalProperties") is False:
                out.append(f"{where}: unknown {key}")
            elif isinstance(sch.get("additionalProperties"), dict):
                out += _errors(item, sch["additionalProperties"], root, f"{where}.{key}")
    return out


def _plain(text: str) -> Any:
    return YAML(typ="safe").load(text)


def test_the_example_is_valid_for_portfwd() -> None:
    contexts = ["sandbox", "sandbox-2"]  # those of `portfwd sandbox --clusters 2`
    loaded = load_text(example_text(), "example.yaml", known_contexts=lambda _: contexts)
    assert loaded.problems == []
    demo = loaded.profiles["demo"]
    assert [(spec.name, spec.context) for _, spec in demo.specs()] == [
        ("echo", "sandbox"),
        ("web", "sandbox"),
        ("api-https", "sandbox"),
        ("api-metrics", "sandbox"),
        ("echo-2", "sandbox-2"),
    ]
    assert [spec.name for _, spec in demo.specs(["frontend"])] == [
        "web",
        "api-https",
        "api-metrics",
    ]
    assert "#" in example_text()  # documented: it has its comments


def test_the_example_is_valid_for_the_schema() -> None:
    sch = schema()
    assert _errors(_plain(example_text()), sch, sch) == []


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("profiles: {dev: {forwards: [{name: a, target: svc/x}]}}", "ports missing"),
        ("profiles: {dev: {forwards: [{name: a, target: svc/x, ports: ['x:80']}]}}", "match"),
        ("profiles: {dev: {forwards: [{name: a, target: svc/x, ports: [http]}]}}", "match"),
        ("profiles: {dev: {namspace: x}}", "unknown namspace"),
        ("version: 2", "not 1"),
        ("profiles: {'bad name': {}}", "does not match"),
    ],
)
def test_the_schema_refuses_what_portfwd_refuses(text: str, problem: str) -> None:
    sch = schema()
    errors = _errors(_plain(text), sch, sch)
    assert any(problem in e for e in errors), errors
    assert load_text(text, "p.yaml").problems  # and portfwd agrees


async def test_the_example_runs_against_the_two_cluster_sandbox(tmp_path: Path) -> None:
    from portfwd.sandbox.fleet import SandboxFleet
    from tests.support.cli import portfwd_async, private_env, write_private

    fleet = SandboxFleet(2)
    await asyncio.wait_for(fleet.start(), 60)
    try:
        env = private_env(tmp_path, KUBECONFIG=str(fleet.kubeconfig_path))
        write_private(tmp_path / "config" / "profiles.yaml", example_text())
        code, out, err = await portfwd_async("up", "demo", "--dry-run", env=env)
    finally:
        await asyncio.wait_for(fleet.stop(), 30)
    assert code == 0, err
    lines = out.splitlines()
    assert [line.split(":")[0] for line in lines] == [
        "echo",
        "web",
        "api-https",
        "api-metrics",
        "echo-2",
    ]
    assert "(context sandbox-2, namespace demo) -> pod echo-" in lines[4]
