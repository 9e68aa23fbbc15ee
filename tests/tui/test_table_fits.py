"""The dashboard reads right at every size (issue 12): what fits is decided from what is on
screen now, columns drop by priority, nothing scrolls sideways, the footer and help fit.

Rendering tests on a fake engine with fixed data: they read the screen as the terminal
shows it (`screen_lines`), not the widgets' state.
"""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import UTC

import pytest

from portfwd.engine.model import ForwardState, ForwardStats
from portfwd.tui.app import PortfwdApp
from portfwd.tui.widgets.traffic_plot import SPARK_SECONDS
from tests.tui.fakes import (
    LONG_ERROR,
    NOW,
    FakeCatalog,
    FakeManager,
    long_error_snapshots,
    mixed_snapshots,
)
from tests.tui.helpers import collapsed, screen_lines, screen_text, settle, wait_until

pytestmark = pytest.mark.timeout(60)


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
    )


def header(app: PortfwdApp) -> str:
    return next(line for line in screen_lines(app) if "Status" in line)


def line_with(app: PortfwdApp, text: str) -> str:
    found = [line for line in screen_lines(app) if text in line]
    assert found, f"{text!r} is not on the screen:\n{screen_text(app)}"
    return found[0]


async def test_at_80_columns_a_row_shows_status_target_local_remote_conns_and_error() -> None:
    app = make_app(FakeManager(long_error_snapshots()))
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        head = header(app)
        for label in ("Status", "Target", "Local", "Remote", "Conns", "Last error"):
            assert label in head, head
        echo = line_with(app, "svc/echo")
        assert "● active" in echo and "8080" in echo and "9000" in echo
        broken = line_with(app, "svc/broken")
        assert "svc/broken has no" in broken and broken.rstrip().endswith("…")


async def test_the_status_column_is_as_wide_as_what_it_shows_now() -> None:
    manager = FakeManager(mixed_snapshots())
    app = make_app(manager)
    async with app.run_test(size=(160, 30)) as pilot:
        await settle(pilot)
        assert "↻ reconnecting #3 · 4s" in line_with(app, "svc/web")
        manager.set(
            replace(
                manager.get("c"),
                state=ForwardState.ACTIVE,
                attempt=0,
                next_retry_at=None,
                reason="",
            )
        )
        await wait_until(pilot, lambda: "↻" not in screen_text(app), what="no countdown")
        # The widest status left is "◌ starting" (10): the next column starts right after it.
        second = re.search(r"Status\s+(\S)", header(app))
        assert second is not None and second.start(1) <= 14, header(app)


async def test_a_burst_of_traffic_does_not_widen_the_table_for_good() -> None:
    clock = [NOW]
    manager = FakeManager(mixed_snapshots())
    app = make_app(manager, clock)
    async with app.run_test(size=(160, 30)) as pilot:
        await settle(pilot)
        before = header(app)
        table = app.dashboard.table
        table.tick()
        stats = manager.get("a").stats
        burst = replace(
            stats,
            bytes_in=stats.bytes_in + 5 * 1024**2,  # 6.5 MiB
            history_in=(5 * 1024**2,),
            history_out=(0,),
            sampled_at=clock[0],
        )
        manager.stats("a", burst)
        await settle(pilot)
        table.tick()  # 5 MiB/s: the rate shows
        await settle(pilot)
        assert "█ ↓ 5.0M ↑   0B" in line_with(app, "svc/echo")
        clock[0] += 1
        table.tick()  # idle again: the sparkline drains...
        clock[0] += SPARK_SECONDS
        table.tick()  # ... to nothing
        await settle(pilot)
        assert "↓" not in line_with(app, "svc/echo")
        assert header(app) == before


async def test_at_220_columns_an_error_that_fits_is_shown_whole() -> None:
    manager = FakeManager(mixed_snapshots())
    reason = "service/broken has no Ready pod: 1 pod matches, none Ready (broken-7c9d: CrashLoop)"
    manager.forwards["d"] = replace(manager.get("d"), reason=reason)
    app = make_app(manager)
    async with app.run_test(size=(220, 40)) as pilot:
        await settle(pilot)
        assert reason in line_with(app, "svc/broken ")


@pytest.mark.parametrize("width", [80, 120, 200])
async def test_the_key_bar_shows_the_most_needed_keys_whole_at_each_width(width: int) -> None:
    """Issue 18: `:` quick add, `p` profiles and `y` copy were not on the footer, and at 80
    columns its last keys were cut off."""
    from portfwd.tui.widgets.key_bar import DASHBOARD_KEYS

    app = make_app(FakeManager(mixed_snapshots()))
    async with app.run_test(size=(width, 24)) as pilot:
        await settle(pilot)
        footer = screen_lines(app)[-1]
        for entry in (": Quick add", "p Profiles", "y Copy cmd", "n New", "space Start/Stop"):
            assert entry in footer, footer
        assert footer.rstrip().endswith("? Help q Quit"), footer  # never cut off
        entries = [f"{k.key} {k.label}" for k in DASHBOARD_KEYS]
        shown = [e for e in entries if e in footer]
        assert len(" ".join(shown)) == len(footer.rstrip()), footer  # nothing else, no overlap
        if width >= 120:
            assert "l Logs" in footer and "/ Filter" in footer
        if width >= 200:
            assert len(shown) == len(entries)


async def test_right_arrow_and_home_never_leave_the_table_scrolled_sideways() -> None:
    app = make_app(FakeManager(long_error_snapshots()))
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await pilot.press("right", "right", "right", "right")
        await settle(pilot)
        assert header(app).lstrip().startswith("Status")
        await pilot.press("home")
        await settle(pilot)
        assert header(app).lstrip().startswith("Status")


async def test_the_sort_arrow_shows_on_a_narrow_column() -> None:
    app = make_app(FakeManager(mixed_snapshots()))
    async with app.run_test(size=(160, 30)) as pilot:
        await settle(pilot)
        app.dashboard.table.sort_by("conns")
        await settle(pilot)
        assert "Conns ▲" in header(app)
        app.dashboard.table.sort_by("conns", reverse=True)
        await settle(pilot)
        assert "Conns ▼" in header(app)


SCROLLBAR_GLYPHS = "▏▎▍▋▉"


async def test_no_scrollbar_glyphs_after_launch_and_after_a_toast() -> None:
    app = make_app(FakeManager(long_error_snapshots()))
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        assert not [g for g in SCROLLBAR_GLYPHS if g in screen_text(app)], screen_text(app)
        app.notify("a toast")
        await settle(pilot)
        assert not [g for g in SCROLLBAR_GLYPHS if g in screen_text(app)], screen_text(app)


async def test_help_fits_two_screens_at_80x24() -> None:
    """Issue 18: `?` took four and a half screens at 80x24."""
    app = make_app(FakeManager(mixed_snapshots()))
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await pilot.press("question_mark")
        await settle(pilot)
        words = collapsed(screen_text(app))
        assert "new forward (picker)" in words, words
        scroll = app.screen.query_one("#help-scroll")
        assert scroll.virtual_size.height <= 2 * scroll.size.height, (
            scroll.virtual_size.height,
            scroll.size.height,
        )


async def test_the_pickers_last_step_fits_at_80x24() -> None:
    app = make_app(FakeManager(mixed_snapshots()))
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        for key in ("n", "enter", "enter", "enter", "enter", "tab", "down", "tab", "enter"):
            await pilot.press(key)
            await settle(pilot)
        text = screen_text(app)
        assert "Start (enter)" in text and "Back (esc)" in text, text
        assert "Reconnect automatically" in text


async def test_last_error_is_readable_whole_for_the_selected_forward_at_80_columns() -> None:
    app = make_app(FakeManager(long_error_snapshots()))
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        app.dashboard.select("d")
        await settle(pilot)
        assert LONG_ERROR in collapsed(screen_text(app))


async def test_uptime_shows_only_while_active() -> None:
    """An API outage leaves a forward reconnecting: it is not "up" meanwhile."""
    manager = FakeManager(mixed_snapshots())
    app = make_app(manager)
    async with app.run_test(size=(200, 30)) as pilot:
        await settle(pilot)
        table = app.dashboard.table
        assert table.cell_text("a", "uptime") == "1h02m"
        assert table.cell_text("c", "uptime") == "-"  # reconnecting, started 42 s ago
        manager.stats("c", ForwardStats(bytes_in=1))
        await settle(pilot)
        assert table.cell_text("c", "uptime") == "-"


async def test_a_forward_added_from_an_empty_dashboard_behind_a_screen_is_drawn() -> None:
    """Seen in tmux at 80x24 and 200x50: the first forward, added while the picker was on
    top, was held by the table but never drawn, under "No forward matches “”"."""
    from portfwd.engine.model import ForwardSpec
    from portfwd.tui.screens.dialogs import HelpScreen

    manager = FakeManager()
    app = make_app(manager)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        app.push_screen(HelpScreen())
        await settle(pilot)
        spec = ForwardSpec(target="svc/echo", remote_port=80, local_port=8080, namespace="demo")
        await manager.add(spec)
        await settle(pilot)
        app.pop_screen()
        await settle(pilot)
        await wait_until(pilot, lambda: "svc/echo" in header_and_rows(app), what="the row")
        assert "No forward" not in screen_text(app)
        assert "● active" in line_with(app, "svc/echo")


def header_and_rows(app: PortfwdApp) -> str:
    return "\n".join(screen_lines(app)[1:4])


async def test_the_unfolded_detail_pane_says_the_last_error_once() -> None:
    """Seen at 80x24: `i` on a failing forward printed its error under the status line and
    again under "Last error", three lines each."""
    app = make_app(FakeManager(long_error_snapshots()))
    async with app.run_test(size=(80, 40)) as pilot:
        await settle(pilot)
        await pilot.press("down", "down", "down")  # svc/broken
        await settle(pilot)
        await pilot.press("i")
        await settle(pilot)
        pane = collapsed("\n".join(screen_lines(app)[screen_lines(app).index(_rule(app)) :]))
        assert "Last error" in pane
        assert pane.count("CrashLoopBackOff: back-off 5m0s") == 1, pane


def _rule(app: PortfwdApp) -> str:
    """The line over the detail pane."""
    return next(line for line in screen_lines(app) if line.startswith("─" * 20))


async def test_the_log_view_of_a_waiting_forward_shows_its_whole_reason_at_80_columns() -> None:
    """Seen at 80x24: the title wrapped and the reason under it was cut mid-sentence."""
    app = make_app(FakeManager(long_error_snapshots()))
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await pilot.press("down", "down")  # svc/web, reconnecting with a long reason
        await settle(pilot)
        await pilot.press("l")
        await settle(pilot)
        top = collapsed("\n".join(screen_lines(app)[:8]))
        assert "● following (f pauses)" in top
        assert "HTTP probe failed with statuscode: 503)" in top, top


async def test_a_click_on_a_key_of_the_key_bar_runs_it() -> None:
    from portfwd.tui.screens.quick_add import QuickAddScreen
    from portfwd.tui.widgets.key_bar import KeyBar

    app = make_app(FakeManager(mixed_snapshots()))
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        footer = screen_lines(app)[-1]
        await pilot.click(KeyBar, offset=(footer.index(": Quick add") + 3, 0))
        await settle(pilot)
        assert isinstance(app.screen, QuickAddScreen)
