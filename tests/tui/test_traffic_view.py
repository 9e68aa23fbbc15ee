"""Traffic on the dashboard (issue 19): the rate column's sparkline, the detail pane's plot of
the last minutes, the header's totals, the name column at 200 columns; Pilot tests and SVG
snapshots at 80x24 and 200x50. The history is injected (a fixed clock and fixed samples), so
the figures in a snapshot never depend on timing."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import UTC
from typing import Any

import pytest
from rich.console import Console
from textual.pilot import Pilot

from portfwd.engine.model import ConnectionInfo, ForwardSnapshot, ForwardStats
from portfwd.tui.app import PortfwdApp
from portfwd.tui.widgets.traffic_plot import (
    SPARK_SECONDS,
    TrafficPlot,
    rate_cell,
    recent,
    spark,
    totals_text,
)
from tests.tui.fakes import NOW, FakeCatalog, FakeManager, mixed_snapshots
from tests.tui.helpers import screen_lines, screen_text, settle, wait_until

pytestmark = pytest.mark.timeout(60)

SnapCompare = Callable[..., bool]
SIZES = [(80, 24), (200, 50)]
SIZE_IDS = ["80x24", "200x50"]


def wave(seconds: int, peak: int, period: int, phase: int = 0) -> tuple[int, ...]:
    """A fixed, busy-looking history: a sawtooth with quiet gaps."""
    values = []
    for n in range(seconds):
        step = (n + phase) % period
        values.append(0 if step < period // 4 else peak * step // period)
    return tuple(values)


def traffic_snapshots() -> list[ForwardSnapshot]:
    snaps = mixed_snapshots()
    echo = snaps[0]
    stats = replace(
        echo.stats,
        history_in=wave(300, 3 * 1024**2, 40),
        history_out=wave(300, 48 * 1024, 25, 7),
        sampled_at=NOW,
        errors=3,
        failures=(("no_pod", 1), ("refused", 2)),
        open_p50=0.012,
        open_p99=0.081,
        first_byte_p50=0.020,
        first_byte_p99=0.140,
    )
    web = snaps[2]
    web_stats = replace(web.stats, history_in=(800, 0, 5000, 12_000), history_out=(90, 0, 300, 40))
    return [
        replace(echo, spec=replace(echo.spec, name="echo"), stats=replace(stats, sampled_at=NOW)),
        snaps[1],
        replace(web, stats=replace(web_stats, sampled_at=NOW - 2)),
        *snaps[3:],
    ]


def make_manager() -> FakeManager:
    manager = FakeManager(traffic_snapshots())
    manager.connections["a"] = [
        ConnectionInfo(
            "127.0.0.1:51234",
            "echo-5f7c9-abcde",
            NOW - 185,
            1_258_291,
            10_240,
            2_097_152.0,
            1024.0,
            524_288.0,
            512.0,
            0.011,
            0.019,
        ),
    ]
    return manager


def make_app(manager: FakeManager, clock: list[float] | None = None) -> PortfwdApp:
    now = clock or [NOW]
    return PortfwdApp(
        manager,
        catalog=FakeCatalog(),
        context="sandbox",
        cluster="sandbox",
        namespace="demo",
        clock=lambda: now[0],
        tz=UTC,
        open_url=lambda url: True,
    )


# -- the pieces -------------------------------------------------------------------------------


def test_recent_counts_the_seconds_after_the_last_sample_as_nothing() -> None:
    assert recent((5, 6, 7), NOW, NOW + 0.5, 4) == [0, 5, 6, 7]
    assert recent((5, 6, 7), NOW, NOW + 2.2, 4) == [6, 7, 0, 0]
    assert recent((5, 6, 7), NOW, NOW + 60, 4) == [0, 0, 0, 0]
    assert recent((), None, NOW, 3) == [0, 0, 0]


def test_a_sparkline_shows_a_trickle_and_blanks_nothing() -> None:
    assert spark([0, 1, 4, 8]) == " ▁▄█"
    assert spark([0, 0]) == "  "
    assert spark([1, 1000]) == "▁█"


def test_the_rate_cell_drains_to_nothing_after_traffic() -> None:
    stats = ForwardStats(history_in=(2048,), history_out=(0,), sampled_at=NOW)
    assert rate_cell(stats, NOW).plain == "       █ ↓ 2.0K ↑   0B"
    assert rate_cell(stats, NOW + SPARK_SECONDS - 1).plain == "█        ↓   0B ↑   0B"
    assert rate_cell(stats, NOW + SPARK_SECONDS).plain == ""  # idle: an empty cell


def test_totals_add_every_forward() -> None:
    a = ForwardStats(connections_open=2, history_in=(1024,), history_out=(10,), sampled_at=NOW)
    b = ForwardStats(connections_open=1, history_in=(2048,), history_out=(0,), sampled_at=NOW)
    assert totals_text([a, b], NOW) == "↓3.0K/s ↑10B/s · 3 open"
    assert totals_text([a, b], NOW + 5) == "↓0B/s ↑0B/s · 3 open"


def test_the_plot_fits_its_width_and_ends_now() -> None:
    stats = ForwardStats(history_in=(0,) * 299 + (4096,), history_out=(), sampled_at=NOW)
    for width in (40, 80, 200):
        console = Console(width=width, record=True, color_system=None)
        console.print(TrafficPlot(stats, NOW))
        lines = console.export_text().splitlines()
        assert all(len(line) <= width for line in lines)
        assert lines[0].startswith("↓ 4.0 KiB/s") and lines[0].endswith("█")
        assert lines[1].endswith("█") and not lines[1].strip(" █")  # the newest: the last
        assert lines[2].startswith("    ↑ 0 B/s") and not lines[2][12:].strip()
        assert lines[-1].rstrip().endswith("now") and "-5m" in lines[-1]
    console = Console(width=80, record=True, color_system=None)
    console.print(TrafficPlot(stats, NOW + 301))
    assert "nothing moved in the last 5 minutes" in console.export_text()


# -- on the dashboard -------------------------------------------------------------------------


def row_of(app: PortfwdApp, text: str) -> str:
    found = [line for line in screen_lines(app) if text in line]
    assert found, f"{text!r} is not on the screen:\n{screen_text(app)}"
    return found[0]


async def test_rate_column_header_totals_and_their_draining() -> None:
    clock = [NOW]
    manager = make_manager()
    app = make_app(manager, clock)
    async with app.run_test(size=(200, 50)) as pilot:
        await settle(pilot)
        table = app.dashboard.table
        echo = row_of(app, "svc/echo")
        last_in, last_out = wave(300, 3 * 1024**2, 40)[-1], wave(300, 48 * 1024, 25, 7)[-1]
        cell = table.cell_text("a", "rate")
        assert cell.startswith(
            spark(
                [
                    a + b
                    for a, b in zip(
                        wave(300, 3 * 1024**2, 40)[-8:],
                        wave(300, 48 * 1024, 25, 7)[-8:],
                        strict=True,
                    )
                ]
            )
        )
        assert cell in echo
        # The header: the rates each way of every forward, and the connections open.
        header = screen_lines(app)[0]
        assert "context sandbox" in header
        assert f"· {totals_text([s.stats for s in traffic_snapshots()], NOW)}" in header
        assert last_in and last_out
        # No new samples (the engine sleeps once nothing moves): the rows drain on the 1 s
        # tick, and the header says 0.
        clock[0] = NOW + SPARK_SECONDS + 2
        app.dashboard._tick()
        await wait_until(pilot, lambda: table.cell_text("a", "rate") == "", what="drained")
        await wait_until(
            pilot, lambda: "↓0B/s ↑0B/s · 2 open" in screen_lines(app)[0], what="header"
        )


async def test_an_idle_rate_cell_is_not_written_again() -> None:
    clock = [NOW]
    quiet = [s for s in mixed_snapshots() if s.next_retry_at is None]  # no countdown
    app = make_app(FakeManager(quiet), clock)
    async with app.run_test(size=(200, 50)) as pilot:
        await settle(pilot)
        table = app.dashboard.table
        before = table.cell_writes
        for n in range(1, 4):
            clock[0] = NOW + n
            table.tick()
        await settle(pilot)
        assert table.cell_writes == before  # nothing moved: no cell changed (uptime in min)


async def test_the_name_column_shows_at_200_columns() -> None:
    """Issue 19: the last error took the room of the name even at 200 columns."""
    manager = FakeManager(mixed_snapshots())
    manager.forwards["a"] = replace(
        manager.get("a"), spec=replace(manager.get("a").spec, name="echo-main")
    )
    app = make_app(manager)
    async with app.run_test(size=(200, 50)) as pilot:
        await settle(pilot)
        assert "Name" in row_of(app, "Status").split()
        assert "echo-main" in row_of(app, "svc/echo").split()


async def test_detail_pane_plot_and_figures() -> None:
    app = make_app(make_manager())
    async with app.run_test(size=(200, 50)) as pilot:
        await settle(pilot)
        await pilot.press("i")
        await settle(pilot)
        text = screen_text(app)
        assert "Traffic, last 5 minutes" in text
        assert "failed 3 (no_pod 1, refused 2)" in text
        assert "stream open p50/p99 12 ms / 81 ms" in text
        assert "first byte p50/p99 20 ms / 140 ms" in text
        assert "1-minute average" in text
        assert "2.0 MiB/s" in text and "19 ms" in text  # the connection's rate, first byte


# -- snapshots --------------------------------------------------------------------------------


@pytest.mark.parametrize("size", SIZES, ids=SIZE_IDS)
def test_rate_column_snapshot(snap_compare: SnapCompare, size: tuple[int, int]) -> None:
    async def run_before(pilot: Pilot[Any]) -> None:
        await settle(pilot)

    assert snap_compare(make_app(make_manager()), terminal_size=size, run_before=run_before)


@pytest.mark.parametrize("size", SIZES, ids=SIZE_IDS)
def test_detail_plot_snapshot(snap_compare: SnapCompare, size: tuple[int, int]) -> None:
    async def run_before(pilot: Pilot[Any]) -> None:
        await settle(pilot)
        await pilot.press("i")
        await settle(pilot)
        if size[1] < 30:  # the pane is 10 lines high: scrolled to the plot (last), as a user would
            pane = pilot.app.screen.query_one("#detail")
            pane.scroll_end(animate=False)
            await settle(pilot)
            assert any(line.startswith(" Traffic, last") for line in screen_lines(pilot.app))

    assert snap_compare(make_app(make_manager()), terminal_size=size, run_before=run_before)
