"""Issue 18 §3 in the resources view (`b`): rows count only the forwards of the context shown;
`F` (shift-f, k9s's port-forward key) forwards the selected resource; `N` forwards the
Services listed (a filter narrows it)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
from textual.pilot import Pilot
from textual.widgets import Static

from portfwd.engine.model import ForwardSnapshot, ForwardSpec, ForwardState
from portfwd.tui.app import PortfwdApp
from portfwd.tui.screens.dialogs import ConfirmScreen
from portfwd.tui.screens.forward_dialog import ForwardDialog
from portfwd.tui.screens.resources import ResourcesScreen
from tests.tui.fakes import NOW, FakeCatalog, FakeManager
from tests.tui.helpers import settle, wait_until

pytestmark = pytest.mark.timeout(60)
SIZE = (120, 30)


def echo_in(context: str, fid: str, port: int) -> ForwardSnapshot:
    spec = ForwardSpec(
        target="svc/echo", remote_port=80, local_port=port, namespace="demo", context=context
    )
    return ForwardSnapshot(
        id=fid,
        spec=spec,
        state=ForwardState.ACTIVE,
        context=context,
        namespace="demo",
        bound=(("127.0.0.1", port),),
        started_at=NOW,
    )


def make_app(snapshots: list[ForwardSnapshot]) -> PortfwdApp:
    return PortfwdApp(
        FakeManager(snapshots),
        catalog=FakeCatalog(),
        context="sandbox",
        namespace="demo",
        clock=lambda: NOW,
    )


async def open_browse(pilot: Pilot[Any]) -> ResourcesScreen:
    await pilot.press("b")
    screen = pilot.app.screen
    assert isinstance(screen, ResourcesScreen)
    await wait_until(pilot, lambda: bool(screen.view.rows), what="the rows")
    await settle(pilot)
    return screen


async def test_a_row_shows_only_the_forwards_of_the_context_it_lists() -> None:
    app = make_app([echo_in("sandbox", "mine", 18080), echo_in("sandbox-2", "other", 28080)])
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_browse(pilot)
        shown = screen.table.cell_text("service/echo", "forwards")
        assert "18080" in shown and "28080" not in shown, shown


async def test_shift_f_forwards_the_selected_resource() -> None:
    app = make_app([])
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_browse(pilot)
        screen.table.move_cursor(row=screen.table.get_row_index("service/echo"))
        await settle(pilot)
        await pilot.press("F")
        await settle(pilot)
        assert isinstance(app.screen, ForwardDialog)


async def test_capital_n_with_a_filter_forwards_the_listed_services() -> None:
    app = make_app([])
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_browse(pilot)
        await pilot.press("slash", *"api")
        await pilot.press("enter")
        await settle(pilot)
        await pilot.press("N")
        await settle(pilot)
        dialog = app.screen
        assert isinstance(dialog, ConfirmScreen)
        question = str(dialog.query_one("#question", Static).render())
        assert "Forward the 1 listed Service (" in question, question
        await pilot.press("n")
        await settle(pilot)
        assert app.screen is screen


def test_a_forward_naming_no_context_counts_in_any() -> None:
    from portfwd.tui.screens.resources import in_view

    snap = replace(echo_in("", "x", 1), context="")
    assert in_view(snap, "sandbox", "demo") and not in_view(snap, "sandbox", "other")
