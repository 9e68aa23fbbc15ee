"""Topology parsing, custom topologies, and the selector grammar the API server accepts."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from portfwd.sandbox.cluster import SandboxCluster
from portfwd.sandbox.selectors import SelectorError, parse_field_selector, parse_label_selector
from portfwd.sandbox.topology import TopologyError, load_topology


def test_demo_topology_has_what_the_project_relies_on() -> None:
    topo = load_topology(None)
    ns = {n.name: n for n in topo.namespaces}
    assert {"demo", "data", "shop"} <= set(ns)
    demo = ns["demo"]
    services = {s.name: s for s in demo.services}
    echo = services["echo"].ports[0]
    assert (echo.name, echo.port, echo.target_port) == ("tcp", 80, "echo")
    assert services["web"].ports[0].target_port == 8080
    assert services["dns"].ports[0].protocol == "UDP"
    assert services["api"].ports[0].target_port == "https"
    assert services["external-db"].selector is None
    workloads = {w.name: w for w in demo.workloads}
    assert workloads["echo"].replicas == 2
    assert workloads["echo"].containers[0].ports[0].backend == "echo"
    assert "NotReady" in workloads["web"].pod_states
    states = {p.state for p in demo.pods}
    assert {"CrashLoopBackOff", "Pending", "ContainerCreating"} <= states
    assert any(s.headless for s in ns["data"].services)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"namespaces": [{"pods": []}]}, "namespaces[0]: missing 'name'"),
        (
            {"namespaces": [{"name": "a", "pods": [{"name": "p", "state": "Sleeping"}]}]},
            "namespaces[0].pods[0].state: state must be one of",
        ),
        (
            {
                "namespaces": [
                    {"name": "a", "pods": [{"name": "p", "ports": [{"containerPort": 0}]}]}
                ]
            },
            "namespaces[0].pods[0].containers[0].ports[0]: containerPort must be 1..65535",
        ),
        (
            {
                "namespaces": [
                    {
                        "name": "a",
                        "pods": [{"name": "p", "ports": [{"containerPort": 1, "backend": "ftp"}]}],
                    }
                ]
            },
            "backend must be one of echo, http, line, silent or HOST:PORT",
        ),
        ({"namespaces": "x"}, "topology.namespaces: expected a list"),
    ],
)
def test_topology_errors_say_where(data: dict[str, Any], message: str) -> None:
    with pytest.raises(TopologyError) as info:
        load_topology(data)
    assert message in str(info.value)


async def test_custom_topology_with_external_backend() -> None:
    """A pod port can point at any TCP server on this machine."""

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"external says hi\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    topo = {
        "namespaces": [
            {
                "name": "ext",
                "pods": [
                    {
                        "name": "bridge",
                        "ports": [{"containerPort": 5432, "backend": f"127.0.0.1:{port}"}],
                    }
                ],
            }
        ]
    }
    try:
        async with SandboxCluster(topo) as sb:
            assert sb.pod_names("ext") == ["bridge"]
            assert sb.pod_names("demo") == []
            pod = sb.get_object("pods", "ext", "bridge")
            assert pod is not None
            reader, writer = await sb.dial("ext", "bridge", pod["metadata"]["uid"], 5432)
            assert await asyncio.wait_for(reader.readline(), 10) == b"external says hi\n"
            writer.close()
    finally:
        server.close()
        await server.wait_closed()


LABELS = {"app": "web", "tier": "front", "env": "prod"}


@pytest.mark.parametrize(
    ("selector", "matches"),
    [
        ("", True),
        ("app=web", True),
        ("app==web,tier=front", True),
        ("app!=web", False),
        ("app in (api, web)", True),
        ("app notin (api,web)", False),
        ("env", True),
        ("!env", False),
        ("!missing", True),
        ("missing", False),
        ("missing notin (x)", True),
        ("tier in (back),app=web", False),
    ],
)
def test_label_selector_grammar(selector: str, matches: bool) -> None:
    assert parse_label_selector(selector)(LABELS) is matches


@pytest.mark.parametrize("bad", ["app in (a", "app in a)", "=x", "a b c"])
def test_label_selector_rejects_garbage(bad: str) -> None:
    with pytest.raises(SelectorError):
        parse_label_selector(bad)


def test_field_selector() -> None:
    obj = {"metadata": {"name": "web-1", "namespace": "demo"}, "status": {"phase": "Running"}}
    assert parse_field_selector("metadata.name=web-1")(obj)
    assert not parse_field_selector("metadata.name!=web-1")(obj)
    assert parse_field_selector("status.phase==Running,metadata.namespace=demo")(obj)
    with pytest.raises(SelectorError):
        parse_field_selector("spec.bogus=1")


label_value = st.from_regex(r"[a-z0-9]([a-z0-9-]{0,10}[a-z0-9])?", fullmatch=True)


@given(st.dictionaries(st.sampled_from(["app", "tier", "env", "k8s.io/x"]), label_value))
def test_equality_selector_built_from_labels_matches_them(labels: dict[str, str]) -> None:
    selector = ",".join(f"{k}={v}" for k, v in labels.items())
    assert parse_label_selector(selector)(labels)
    assert parse_label_selector(",".join(f"{k} in ({v},zz)" for k, v in labels.items()))(labels)
    if labels:
        key = next(iter(labels))
        assert not parse_label_selector(f"{key}!={labels[key]}")(labels)
