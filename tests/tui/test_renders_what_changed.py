"""The dashboard draws what changed and nothing else (issue 22: an idle dashboard with 50 forwards
used 11-16 % of a core, redrawing every row every second).

Counted, not timed: the lines the table renders (`render_line`), the rows it re-creates, the
cells it writes. The figures themselves are in bench/tui.py.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC
from typing import Any

import pytest

from portfwd.engine.model import ForwardSnapshot, ForwardSpec, ForwardState, ForwardStats
from portfwd.tui.app import PortfwdApp
from portfwd.tui.widgets.forward_table import ForwardTable
from tests.tui.fakes import NOW, FakeCatalog, FakeManager
from tests.tui.helpers import screen_text, settle, wait_until

pytestmark = pytest.mark.timeout(60)


def active(n: int, up: float, **kw: Any) -> ForwardSnapshot:
    port = 20000 + n
    return ForwardSnapshot(
        id=f"f{n:03d}",
        spec=ForwardSpec(
            target=f"svc/echo-{n:03d}",
            remote_port=80,
            local_port=port,
            namespace="demo",
            context="sandbox",
        ),
        state=ForwardState.ACTIVE,
        context="sandbox",
        namespace="demo",
        remote_port=80,
        bound=(("127.0.0.1", port),),
        started_at=NOW - up,
        **kw,
    )


def make_app(manager: FakeManager, clock: list[float]) -> PortfwdApp:
    return PortfwdApp(
        manager,
        catalog=FakeCatalog(),
        context="sandbox",
        cluster="sandbox",
        namespace="demo",
        clock=lambda: clock[0],
        tz=UTC,
    )


class Drawn:
    """Counts the lines the table renders (Textual asks only for lines it must repaint)."""

    def __init__(self, table: ForwardTable) -> None:
        self.lines: list[int] = []
        render = table.render_line

        def counting(y: int) -> Any:
            self.lines.append(y)
            return render(y)

        table.render_line = counting  # type: ignore[method-assign]


async def test_a_tick_with_nothing_changed_draws_nothing() -> None:
    clock = [NOW]
    manager = FakeManager([active(n, up=3600 + n) for n in range(5)])
    app = make_app(manager, clock)
    async with app.run_test(size=(160, 30)) as pilot:
        await settle(pilot)
        table = app.dashboard.table
        table.tick()  # the first tick measures the rates' start
        await settle(pilot)
        drawn = Drawn(table)
        writes, rebuilds = table.cell_writes, table.rebuilds
        clock[0] += 1  # a second later: every uptime still reads 1h00m
        table.tick()
        await settle(pilot)
        assert drawn.lines == []
        assert (table.cell_writes, table.rebuilds) == (writes, rebuilds)


async def test_a_tick_draws_only_the_row_whose_uptime_moved() -> None:
    clock = [NOW]
    # f000 turns one minute old at the next tick; the others stay as they read.
    manager = FakeManager([active(0, up=59.5), *(active(n, up=600 + n) for n in range(1, 6))])
    app = make_app(manager, clock)
    async with app.run_test(size=(160, 30)) as pilot:
        await settle(pilot)
        table = app.dashboard.table
        table.tick()
        await settle(pilot)
        assert table.cell_text("f000", "uptime") == "<1m"
        drawn = Drawn(table)
        rebuilds = table.rebuilds
        clock[0] += 1
        table.tick()
        await settle(pilot)
        assert table.cell_text("f000", "uptime") == "1m"
        row = table.get_row_index("f000") + 1  # under the header
        assert set(drawn.lines) == {row}, drawn.lines  # not every row, as before
        assert table.rebuilds == rebuilds
        assert "1m" in next(line for line in screen_text(app).splitlines() if "echo-000" in line)


async def test_a_column_that_widens_is_resized_without_re_creating_the_rows() -> None:
    clock = [NOW]
    manager = FakeManager([active(n, up=600) for n in range(4)])
    app = make_app(manager, clock)
    async with app.run_test(size=(160, 30)) as pilot:
        await settle(pilot)
        table = app.dashboard.table
        assert "bytes_in" in table.shown_keys
        rebuilds, resizes = table.rebuilds, table.resizes
        manager.stats("f002", ForwardStats(bytes_in=3 * 1024**2, bytes_out=5))  # 0 B -> 3.0 MiB
        await wait_until(
            pilot,
            lambda: "3.0 MiB" in screen_text(app),
            what="the wider byte count shown whole",
        )
        assert table.rebuilds == rebuilds  # every row re-created before
        assert table.resizes == resizes + 1


async def test_rows_off_screen_cost_nothing_until_scrolled_to() -> None:
    clock = [NOW]
    manager = FakeManager([active(n, up=59.5) for n in range(100)])
    app = make_app(manager, clock)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        table = app.dashboard.table
        table.tick()
        await settle(pilot)
        shown = len(table.visible_rows())
        assert 0 < shown < 30
        before = table.tick_rows
        clock[0] += 1  # every forward turns a minute old
        table.tick()
        assert table.tick_rows - before == shown  # not 100
        await settle(pilot)
        assert table.cell_text("f000", "uptime") == "1m"
        assert table.cell_text("f099", "uptime") == "<1m"  # off screen: not computed
        await pilot.press("G")  # to the last row
        await wait_until(
            pilot,
            lambda: any(
                "echo-099" in line and " 1m " in line for line in screen_text(app).splitlines()
            ),
            what="the last row caught up when scrolled to",
        )


async def test_an_event_for_an_off_screen_row_does_not_redraw_the_screen() -> None:
    clock = [NOW]
    manager = FakeManager([active(n, up=600) for n in range(100)])
    app = make_app(manager, clock)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        table = app.dashboard.table
        drawn = Drawn(table)
        manager.set(replace(manager.get("f090"), stats=ForwardStats(connections_open=1)))
        await wait_until(pilot, lambda: table.cell_text("f090", "conns") == "1", what="the event")
        await settle(pilot)
        assert drawn.lines == []
