"""How the dashboard consumes events: in place, resync on Lagged, tick only while visible.

These drive a fake engine because they need events the real one cannot be made to emit on
cue (a lagged subscriber, a chosen stats value); behaviour against the real engine is covered
in test_app.py.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC

import pytest
from textual.message import Message
from textual.widgets import Static

from portfwd.engine.events import ForwardChanged, Lagged
from portfwd.engine.model import ForwardState, ForwardStats
from portfwd.tui.app import PortfwdApp
from portfwd.tui.messages import StatsBatch
from portfwd.tui.screens.logs import LogScreen
from tests.tui.fakes import NOW, FakeCatalog, FakeManager, mixed_snapshots
from tests.tui.helpers import screen_lines, settle, wait_until


def line_with(app: PortfwdApp, text: str) -> str:
    return next(line for line in screen_lines(app) if text in line)


pytestmark = pytest.mark.timeout(60)


def make_app(manager: FakeManager, clock: list[float]) -> PortfwdApp:
    return PortfwdApp(
        manager,
        catalog=FakeCatalog(),
        context="sandbox",
        cluster="sandbox",
        clock=lambda: clock[0],
        tz=UTC,
    )


async def test_events_update_cells_in_place_without_rebuilding() -> None:
    manager = FakeManager(mixed_snapshots())
    app = make_app(manager, [NOW])
    async with app.run_test(size=(160, 30)) as pilot:
        await settle(pilot)
        table = app.dashboard.table
        rebuilds = 0
        rebuild, populate = table.rebuild, table._populate

        def counting_rebuild() -> None:
            nonlocal rebuilds
            rebuilds += 1
            rebuild()

        def counting_populate(order: list[str]) -> None:
            nonlocal rebuilds
            rebuilds += 1
            populate(order)

        table.rebuild = counting_rebuild  # type: ignore[method-assign]
        table._populate = counting_populate  # type: ignore[method-assign]
        # New values as wide as the old ones: the layout stays, only cells change.
        stats = ForwardStats(connections_open=7, bytes_in=3 * 1024**3, bytes_out=30 * 1024)
        manager.stats("a", stats)
        snap = replace(manager.get("e"), state=ForwardState.ERROR, reason="pod db-0 deleted")
        manager.set(snap)
        await wait_until(pilot, lambda: table.cell_text("e", "status") == "✖ error", what="error")
        await wait_until(pilot, lambda: table.cell_text("a", "conns") == "7", what="stats")
        assert [table.cell_text("a", k) for k in ("conns", "bytes_in", "bytes_out")] == [
            "7",
            "3.0 GiB",
            "30.0 KiB",
        ]
        assert table.cell_text("e", "error") == "pod db-0 deleted"
        assert rebuilds == 0
        assert table.visible_ids() == ["a", "b", "c", "d", "e"]


async def test_lagged_resyncs_from_the_snapshot() -> None:
    manager = FakeManager(mixed_snapshots())
    app = make_app(manager, [NOW])
    async with app.run_test(size=(160, 30)) as pilot:
        await settle(pilot)
        # Changes the subscriber never heard about (its queue overflowed) ...
        manager.forwards["b"] = replace(manager.forwards["b"], state=ForwardState.ACTIVE)
        del manager.forwards["d"]
        manager.publish(Lagged())
        table = app.dashboard.table
        await wait_until(pilot, lambda: "d" not in table.visible_ids(), what="resync")
        assert table.cell_text("b", "status") == "● active"


async def test_uptime_ticks_only_while_the_dashboard_is_visible() -> None:
    clock = [NOW]
    manager = FakeManager(mixed_snapshots())
    app = make_app(manager, clock)
    async with app.run_test(size=(160, 30)) as pilot:
        await settle(pilot)
        table = app.dashboard.table
        assert table.cell_text("a", "uptime") == "1h02m"
        clock[0] = NOW + 600
        await wait_until(pilot, lambda: table.cell_text("a", "uptime") == "1h12m", what="tick")
        app.push_screen(LogScreen("a"))
        await settle(pilot)
        assert not app.dashboard.ticking  # no timer while hidden
        app.pop_screen()
        await settle(pilot)
        assert app.dashboard.ticking


async def test_rates_show_after_a_tick() -> None:
    clock = [NOW]
    manager = FakeManager(mixed_snapshots())
    app = make_app(manager, clock)
    async with app.run_test(size=(160, 30)) as pilot:
        await settle(pilot)
        table = app.dashboard.table
        table.tick()
        before = manager.get("a").stats
        # The engine's last sample: 2 KiB in during the second that ended at NOW.
        manager.stats("a", replace(before, history_in=(2048,), history_out=(0,), sampled_at=NOW))
        await settle(pilot)
        clock[0] = NOW + 0.5
        table.tick()
        assert table.cell_text("a", "rate") == "       █ ↓ 2.0K ↑   0B"
        await settle(pilot)
        assert "█ ↓ 2.0K ↑   0B" in line_with(app, "svc/echo")
        clock[0] = NOW + 1  # a second later with no sample: nothing moved in it
        table.tick()
        assert table.cell_text("a", "rate") == "      █  ↓   0B ↑   0B"


async def test_changed_event_for_a_filtered_out_row_stays_hidden() -> None:
    manager = FakeManager(mixed_snapshots())
    app = make_app(manager, [NOW])
    async with app.run_test(size=(160, 30)) as pilot:
        await settle(pilot)
        await pilot.press("slash", "e", "c", "h", "o")
        await settle(pilot)
        table = app.dashboard.table
        assert table.visible_ids() == ["a"]
        manager.publish(ForwardChanged(replace(manager.get("b"), reason="still web")))
        manager.publish(
            ForwardChanged(replace(manager.get("e"), reason="echo server gone", pod="x"))
        )
        await wait_until(pilot, lambda: len(table.visible_ids()) == 2, what="now matches")
        assert table.visible_ids() == ["a", "e"]


async def test_a_flood_of_stats_ticks_is_coalesced() -> None:
    manager = FakeManager(mixed_snapshots())
    app = make_app(manager, [NOW])
    async with app.run_test(size=(160, 30)) as pilot:
        await settle(pilot)
        batches = 0
        original = app.post_message

        def counting(message: Message) -> bool:
            nonlocal batches
            if isinstance(message, StatsBatch):
                batches += 1
            return original(message)

        app.post_message = counting  # type: ignore[method-assign]
        for n in range(1, 501):
            manager.stats("a", ForwardStats(connections_open=1, bytes_in=n * 1024))
        table = app.dashboard.table
        await wait_until(
            pilot, lambda: table.cell_text("a", "bytes_in") == "500.0 KiB", what="last"
        )
        assert 1 <= batches < 500  # the queue held batches, not 500 messages


async def test_text_from_outside_is_shown_verbatim_not_as_markup() -> None:
    manager = FakeManager(mixed_snapshots())
    odd = replace(
        manager.get("e"),
        context="[b]prod[/b]",
        state=ForwardState.ERROR,
        reason="denied by webhook [policy/x] [/b]",
    )
    manager.forwards["e"] = odd
    app = make_app(manager, [NOW])
    async with app.run_test(size=(160, 30)) as pilot:
        await settle(pilot)
        table = app.dashboard.table
        assert table.cell_text("e", "context") == "[b]prod[/b]"
        assert table.cell_text("e", "error") == "denied by webhook [policy/x] [/b]"
        assert "[b]prod" in line_with(app, "denied by webhook")  # shown as typed (and cut)
        await pilot.press("slash", *"[/i]")
        await settle(pilot)
        empty = app.dashboard.query_one("#empty", Static)
        assert str(empty.render()) == "No forward matches “[/i]”. Press Esc to clear the filter."


async def test_a_reason_that_stays_loses_its_red_when_the_error_ends() -> None:
    manager = FakeManager(mixed_snapshots())
    app = make_app(manager, [NOW])
    async with app.run_test(size=(160, 30)) as pilot:
        await settle(pilot)
        table = app.dashboard.table
        failed = replace(manager.get("e"), state=ForwardState.ERROR, reason="pod db-0 deleted")
        manager.set(failed)
        await wait_until(pilot, lambda: table.cell_text("e", "status") == "✖ error", what="error")
        assert table.shown_cells("e")["error"].style == "red"
        manager.set(replace(failed, state=ForwardState.STOPPED))
        await wait_until(pilot, lambda: table.cell_text("e", "status") == "■ stopped", what="stop")
        assert table.shown_cells("e")["error"].style == ""


async def test_an_open_log_view_says_when_its_forward_is_deleted() -> None:
    manager = FakeManager(mixed_snapshots())
    app = make_app(manager, [NOW])
    async with app.run_test(size=(160, 30)) as pilot:
        await settle(pilot)
        screen = LogScreen("e")
        app.push_screen(screen)
        await settle(pilot)
        title = screen.query_one("#log-title", Static)
        assert str(title.render()).startswith("Log of ")
        await manager.remove("e")
        await wait_until(
            pilot,
            lambda: str(title.render()).startswith("Log of forward e (removed)  ·"),
            what="title",
        )
