"""The metrics endpoint: counters that match the bytes a client really sent and got, per
forward and per open connection, in text a Prometheus parser reads, kept across a reconnect;
an address in use is one line and the forwards run without it."""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import AsyncIterator

import aiohttp
import pytest
import pytest_asyncio
from click.testing import CliRunner
from prometheus_client.openmetrics.parser import (
    text_string_to_metric_families as openmetrics_families,
)
from prometheus_client.parser import text_string_to_metric_families

from portfwd.cli.root import cli
from portfwd.engine.manager import Manager
from portfwd.engine.model import ForwardSpec, ForwardState
from portfwd.errors import PortfwdError
from portfwd.metrics.server import MetricsServer
from portfwd.sandbox.cluster import SandboxCluster
from tests.support.wait import eventually, until

pytestmark = pytest.mark.timeout(120)

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


@pytest_asyncio.fixture
async def endpoint(manager: Manager) -> AsyncIterator[MetricsServer]:
    server = MetricsServer(manager.snapshot, manager.open_connections, "127.0.0.1", 0)
    await server.start()
    try:
        yield server
    finally:
        await server.close()


async def scrape(server: MetricsServer, accept: str = "") -> tuple[str, str]:
    headers = {"Accept": accept} if accept else {}
    async with (
        aiohttp.ClientSession() as session,
        session.get(server.url, headers=headers, timeout=aiohttp.ClientTimeout(total=20)) as resp,
    ):
        assert resp.status == 200
        return resp.headers["Content-Type"], await resp.text()


def samples(text: str) -> Samples:
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(found: Samples, name: str, **labels: str) -> float:
    wanted = set(labels.items())
    hits = [v for (n, ls), v in found.items() if n == name and wanted <= ls]
    assert len(hits) == 1, (name, labels, hits)
    return hits[0]


async def echo_open(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 20)


async def exchange(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, payload: bytes
) -> None:
    writer.write(payload)
    await writer.drain()
    assert await asyncio.wait_for(reader.readexactly(len(payload)), 20) == payload


async def test_counters_match_the_bytes_per_forward_and_connection(
    manager: Manager, sandbox: SandboxCluster, endpoint: MetricsServer
) -> None:
    fid = await manager.add(ForwardSpec(target="svc/echo", remote_port=80, name="echo"))
    snap = manager.get(fid)
    assert snap.state is ForwardState.ACTIVE, snap.reason
    reader, writer = await echo_open(snap.local_port)
    first = os.urandom(123_457)
    await exchange(reader, writer, first)

    async def open_connection_counted() -> Samples | None:
        found = samples((await scrape(endpoint))[1])
        sent = [v for (n, _), v in found.items() if n == "portfwd_connection_sent_bytes"]
        # The minute's rate is the bytes of the minute / 60 (sampled once a second).
        minute = [
            round(v * 60)
            for (n, ls), v in found.items()
            if n == "portfwd_connection_sent_bytes_per_second" and ("window", "1m") in ls
        ]
        return found if sent == [len(first)] and minute == [len(first)] else None

    found = await until(open_connection_counted, limit=20)
    assert value(found, "portfwd_connection_received_bytes", forward="echo") == len(first)
    assert value(found, "portfwd_forward_open_connections", forward="echo") == 1
    assert value(found, "portfwd_forward_up", forward="echo", target="svc/echo") == 1
    assert value(found, "portfwd_forward_state", forward="echo", state="active") == 1
    assert value(found, "portfwd_forward_state", forward="echo", state="error") == 0
    assert value(found, "portfwd_connection_stream_open_seconds", forward="echo") >= 0
    assert value(found, "portfwd_connection_first_byte_seconds", forward="echo") >= 0
    minute = value(found, "portfwd_forward_received_bytes_per_second", forward="echo", window="1m")
    assert round(minute * 60) == len(first)
    writer.close()
    await writer.wait_closed()

    # The pod goes away; the forward follows the replacement and its counters carry on.
    await sandbox.delete_pod("demo", snap.pod)
    await eventually(
        lambda: (
            manager.get(fid).pod not in ("", snap.pod)
            and manager.get(fid).state is ForwardState.ACTIVE
        ),
        limit=60,
    )
    second = os.urandom(65_536)
    reader, writer = await echo_open(snap.local_port)
    await exchange(reader, writer, second)
    writer.close()
    await writer.wait_closed()
    total = len(first) + len(second)

    async def all_counted() -> Samples | None:
        found = samples((await scrape(endpoint))[1])
        done = value(found, "portfwd_forward_sent_bytes_total", forward="echo") == total
        closed = value(found, "portfwd_forward_open_connections", forward="echo") == 0
        return found if done and closed else None

    found = await until(all_counted, limit=20)
    assert value(found, "portfwd_forward_received_bytes_total", forward="echo") == total
    assert value(found, "portfwd_forward_connections_total", forward="echo") == 2
    assert not [n for (n, _), _v in found.items() if n.startswith("portfwd_connection_")]
    # Two connections, each with a stream opened and a first byte: summaries across the
    # reconnect, with their quantiles; no failure of any reason.
    for name in ("portfwd_forward_stream_open_seconds", "portfwd_forward_first_byte_seconds"):
        assert value(found, f"{name}_count", forward="echo") == 2
        assert value(found, f"{name}_sum", forward="echo") > 0
        p50 = value(found, name, forward="echo", quantile="0.5")
        assert 0 < p50 <= value(found, name, forward="echo", quantile="0.99")
    failures = [
        (dict(ls)["reason"], v)
        for (n, ls), v in found.items()
        if n == "portfwd_forward_connection_failures_total"
    ]
    assert len(failures) == 8 and all(v == 0 for _r, v in failures)


async def test_openmetrics_when_the_scraper_asks(manager: Manager, endpoint: MetricsServer) -> None:
    await manager.add(ForwardSpec(target="svc/echo", remote_port=80, name="om"))
    content_type, text = await scrape(
        endpoint, "application/openmetrics-text; version=1.0.0; charset=utf-8"
    )
    assert content_type.startswith("application/openmetrics-text")
    names = {f.name for f in openmetrics_families(text)}
    assert {
        "portfwd_forward_sent_bytes",
        "portfwd_forward_up",
        "portfwd_forward_sent_bytes_per_second",
        "portfwd_forward_stream_open_seconds",
        "portfwd_forward_connection_failures",
    } <= names
    content_type, text = await scrape(endpoint)
    assert content_type.startswith("text/plain")
    found = samples(text)
    assert value(found, "portfwd_forward_up", forward="om") == 1


async def test_an_address_in_use_is_one_line(manager: Manager) -> None:
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        server = MetricsServer(manager.snapshot, manager.open_connections, "127.0.0.1", port)
        with pytest.raises(PortfwdError) as caught:
            await server.start()
    assert str(caught.value) == (
        f"metrics address 127.0.0.1:{port} is in use; the forwards run without the endpoint "
        "(pick another --metrics ADDR:PORT)"
    )


@pytest.mark.parametrize(
    ("given", "words"),
    [("nonsense", "use ADDRESS:PORT"), ("web:9465", "must be an IP address")],
)
def test_a_bad_metrics_address_is_a_usage_error(given: str, words: str) -> None:
    result = CliRunner().invoke(cli, ["forward", "--metrics", given, "svc/echo", "80"])
    assert result.exit_code == 2
    assert words in result.output
