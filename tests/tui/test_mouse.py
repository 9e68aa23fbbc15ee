"""Mouse, as in k9s: a click selects a row (and no more), a double click opens its log, a
click on a header sorts by that column."""

from __future__ import annotations

from datetime import UTC

import pytest

from portfwd.tui.app import PortfwdApp
from portfwd.tui.screens.logs import LogScreen
from tests.tui.fakes import NOW, FakeCatalog, FakeManager, mixed_snapshots
from tests.tui.helpers import settle

pytestmark = pytest.mark.timeout(60)


def make_app() -> PortfwdApp:
    return PortfwdApp(
        FakeManager(mixed_snapshots()),
        catalog=FakeCatalog(),
        context="sandbox",
        clock=lambda: NOW,
        tz=UTC,
    )


async def test_a_click_selects_a_row_and_a_double_click_opens_its_log() -> None:
    app = make_app()
    async with app.run_test(size=(160, 30)) as pilot:
        await settle(pilot)
        table = app.dashboard.table
        await pilot.click("#forwards", offset=(4, 3))  # the third row: svc/web
        await settle(pilot)
        assert table.selected_id == "c" and app.screen is app.dashboard
        await pilot.click("#forwards", offset=(4, 3))  # again, on the selected row
        await settle(pilot)
        assert app.screen is app.dashboard  # a click never opens anything
        await pilot.double_click("#forwards", offset=(4, 4))  # svc/broken's row
        await settle(pilot)
        assert isinstance(app.screen, LogScreen) and app.screen.forward_id == "d"


async def test_a_click_on_a_header_sorts_by_it() -> None:
    app = make_app()
    async with app.run_test(size=(160, 30)) as pilot:
        await settle(pilot)
        table = app.dashboard.table
        header_x = sum(
            w + 2 for k, w in table.column_layout.widths[: table.shown_keys.index("target")]
        )
        await pilot.click("#forwards", offset=(header_x + 2, 0))
        await settle(pilot)
        assert table.sort_column == "target"
        assert table.visible_ids() == ["b", "e", "d", "a", "c"]  # deploy/, pod/, svc/...
