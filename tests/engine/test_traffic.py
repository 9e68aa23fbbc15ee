"""Traffic figures: rates that add up to the bytes really sent, per forward and per open
connection; rates back to 0 once traffic stops (and the sampler asleep again); failed
connections by reason; stream-open and first-byte times."""

from __future__ import annotations

import asyncio
import os
from collections import deque

import pytest
from hypothesis import given
from hypothesis import strategies as st

from portfwd.engine.manager import Manager
from portfwd.engine.model import ForwardSpec, ForwardState
from portfwd.engine.traffic import (
    AVERAGE_SECONDS,
    HISTORY_SECONDS,
    LATENCY_WINDOW,
    IntRing,
    LatencyWindow,
    RateRing,
    Traffic,
)
from portfwd.sandbox.cluster import SandboxCluster
from tests.support.wait import eventually

pytestmark = pytest.mark.timeout(120)


# -- the pieces, without a cluster ------------------------------------------------------------


def test_a_ring_counts_seconds_it_slept_through_as_nothing() -> None:
    ring = RateRing(5, second=100)
    assert ring.sample(101, 1000, 10)
    assert not ring.sample(101, 5000, 10)  # the same second twice: ignored
    assert ring.sample(104, 4000, 40)  # 102 and 103 moved nothing (nobody woke the sampler)
    assert ring.padded(104, 5) == ([1000, 0, 0, 3000], [10, 0, 0, 30])
    assert ring.padded(106, 5) == ([0, 0, 3000, 0, 0], [0, 0, 30, 0, 0])
    assert ring.padded(106, 3) == ([3000, 0, 0], [30, 0, 0])
    assert ring.padded(500, 3) == ([0, 0, 0], [0, 0, 0])
    rate_in, rate_out, avg_in, avg_out = ring.rates(104)
    assert (rate_in, rate_out) == (3000, 30)
    assert (avg_in, avg_out) == (4000 / AVERAGE_SECONDS, 40 / AVERAGE_SECONDS)
    assert ring.rates(105)[:2] == (0, 0)  # a second later with no sample: nothing moved


def test_a_ring_is_bounded() -> None:
    ring = RateRing(3, second=0)
    for second in range(1, 50):
        ring.sample(second, second * 10, 0)
    assert ring.padded(49, 100)[0] == [10, 10, 10]
    ring.sample(10_000, 600, 0)  # a long sleep: bounded too (not 10,000 zeros)
    assert len(ring.ins) == 3


def test_quantiles_by_nearest_rank_over_a_bounded_window() -> None:
    window = LatencyWindow()
    assert window.quantiles() == (None, None)
    for n in range(1, 101):
        window.add(n / 1000)
    assert window.quantiles() == (0.050, 0.099)
    for _ in range(LATENCY_WINDOW):
        window.add(1.0)
    assert window.quantiles() == (1.0, 1.0)  # the old ones left the window


def test_history_leaves_out_the_idle_start() -> None:
    traffic = Traffic()
    traffic.sample(1000, 0, 0, [])
    traffic.sample(1001, 100, 0, [])
    traffic.sample(1002, 100, 7, [])
    assert traffic.history(1003) == ((100, 0, 0), (0, 7, 0))
    assert Traffic().history(5) == ((), ())


# -- against the sandbox ----------------------------------------------------------------------


async def _echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, payload: bytes) -> None:
    writer.write(payload)
    await writer.drain()
    assert await asyncio.wait_for(reader.readexactly(len(payload)), 20) == payload


async def test_figures_match_the_bytes_per_forward_and_connection(manager: Manager) -> None:
    fid = await manager.add(ForwardSpec(target="svc/echo", remote_port=80, name="echo"))
    snap = manager.get(fid)
    assert snap.state is ForwardState.ACTIVE, snap.reason
    one = await asyncio.open_connection("127.0.0.1", snap.local_port)
    two = await asyncio.open_connection("127.0.0.1", snap.local_port)
    sizes = (300_001, 77_777)
    for (reader, writer), size in zip((one, two), sizes, strict=True):
        await _echo(reader, writer, os.urandom(size))
    total = sum(sizes)

    # Each open connection: its own bytes, and the rates its bytes add up to.
    def per_connection() -> bool:
        infos = manager.open_connections(fid)
        return sorted(c.bytes_out for c in infos) == sorted(sizes) and all(
            c.avg_in * AVERAGE_SECONDS == c.bytes_in for c in infos
        )

    await eventually(per_connection, limit=20)
    for info in manager.open_connections(fid):
        assert info.bytes_in == info.bytes_out
        assert info.stream_open is not None and info.stream_open >= 0
        assert info.first_byte is not None and info.first_byte >= info.stream_open

    # The forward: the per-second history adds up to the totals (nothing is lost between
    # samples), and the 1-minute average is that sum over 60 s.
    def all_sampled() -> bool:
        stats = manager.get(fid).stats
        return sum(stats.history_out) == total and sum(stats.history_in) == total

    await eventually(all_sampled, limit=20)
    stats = manager.get(fid).stats
    assert (stats.bytes_in, stats.bytes_out) == (total, total)
    assert stats.avg_out * AVERAGE_SECONDS == pytest.approx(total)
    assert stats.connections_open == 2 and stats.connections_total == 2
    assert stats.open_p50 is not None and stats.open_p99 is not None
    assert stats.open_p50 <= stats.open_p99
    assert stats.first_byte_p50 is not None and stats.first_byte_p99 is not None
    assert stats.sampled_at is not None
    for _reader, writer in (one, two):
        writer.close()


async def test_rates_go_to_zero_when_traffic_stops(manager: Manager) -> None:
    fid = await manager.add(ForwardSpec(target="svc/echo", remote_port=80))
    reader, writer = await asyncio.open_connection("127.0.0.1", manager.get(fid).local_port)
    try:
        # Traffic until a whole second of it was sampled both ways.
        async with asyncio.timeout(30):
            while not (manager.get(fid).stats.rate_in and manager.get(fid).stats.rate_out):
                await _echo(reader, writer, os.urandom(16_384))
                await asyncio.sleep(0.01)
        assert manager.sampler.running
        assert manager.open_connections(fid)[0].rate_out > 0

        def idle() -> bool:
            stats = manager.get(fid).stats
            conn = manager.open_connections(fid)[0]
            return (
                stats.rate_in == stats.rate_out == 0
                and conn.rate_in == conn.rate_out == 0
                and not manager.sampler.running  # nothing moves: the sampler sleeps
            )

        await eventually(idle, limit=20)
        stats = manager.get(fid).stats
        assert stats.avg_in > 0  # the last minute still had traffic
        assert sum(stats.history_in) == stats.bytes_in
    finally:
        writer.close()


async def test_failed_connections_by_reason(manager: Manager, sandbox: SandboxCluster) -> None:
    fid = await manager.add(ForwardSpec(target="pod/toolbox", remote_port=7000))
    snap = manager.get(fid)
    assert snap.state is ForwardState.ACTIVE, snap.reason
    await sandbox.set_backend_refusing("demo", "toolbox", 7000)
    reader, writer = await asyncio.open_connection("127.0.0.1", snap.local_port)
    writer.write(b"hello\n")
    assert await asyncio.wait_for(reader.read(), 10) == b""
    writer.close()
    await eventually(lambda: manager.get(fid).stats.errors == 1)
    assert manager.get(fid).stats.failures == (("refused", 1),)


@given(
    capacity=st.integers(1, 9),
    values=st.lists(st.integers(0, 2**40), max_size=40),
    count=st.integers(0, 12),
)
def test_an_int_ring_keeps_the_newest_like_a_bounded_deque(
    capacity: int, values: list[int], count: int
) -> None:
    ring, model = IntRing(capacity), deque[int](maxlen=capacity)
    for v in values:
        ring.append(v)
        model.append(v)
    assert len(ring) == len(model)
    assert ring.tail(count) == list(model)[len(model) - min(count, len(model)) :]


def test_the_windows_edges_once_bytes_stopped() -> None:
    """The idle shortcut (no lists built for a forward idle past the window) says what the
    full computation says, at the edge of each window."""
    traffic = Traffic()
    traffic.sample(1000, 0, 0, [])
    traffic.sample(1001, 600, 60, [])  # the only second that moved
    assert traffic.ring.rates(1001 + AVERAGE_SECONDS - 1) == (0.0, 0.0, 10.0, 1.0)
    assert traffic.ring.rates(1001 + AVERAGE_SECONDS) == (0.0, 0.0, 0.0, 0.0)
    assert traffic.history(1001 + HISTORY_SECONDS - 1)[0][0] == 600
    assert traffic.history(1001 + HISTORY_SECONDS) == ((), ())
