"""SVG snapshots of the screens with fixed data (fixed clock, UTC timestamps, fake engine).

Update after an intended visual change with `pytest tests/tui/test_snapshots.py
--snapshot-update`, then look at the SVGs under tests/tui/__snapshots__/ before committing.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import UTC
from typing import Any

import pytest
from textual.pilot import Pilot
from textual.widgets import Input

from portfwd.engine.model import ForwardSnapshot, ForwardStats
from portfwd.tui.app import PortfwdApp
from tests.tui.fakes import (
    NOW,
    FakeCatalog,
    FakeConnection,
    FakeManager,
    log_entries,
    long_error_snapshots,
    mixed_snapshots,
)
from tests.tui.helpers import settle


@pytest.fixture(autouse=True)
def _as_a_user(monkeypatch: pytest.MonkeyPatch) -> None:
    """The picker's hint says what it does below 1024 for whoever runs it: the snapshots
    show what a user (not root) sees, whoever runs the suite."""
    from portfwd.tui.screens import picker

    monkeypatch.setattr(picker, "_LOW_PORT_RULE", " and above 1024 (below: +8000, 80 -> 8080)")


SIZE = (150, 32)
# The sizes the dashboard must read right at (issue 12): a laptop's tmux pane, a common
# window, a wide screen.
SIZES = [(80, 24), (120, 40), (200, 50)]
SIZE_IDS = ["80x24", "120x40", "200x50"]
pytestmark = pytest.mark.timeout(60)

SnapCompare = Callable[..., bool]


async def steady(pilot: Pilot[Any]) -> None:
    """A blinking cursor would make screenshots depend on timing: hold it still."""
    for box in pilot.app.screen.query(Input):
        box.cursor_blink = False
    await pilot.pause()


def snap(
    snap_compare: SnapCompare,
    app: PortfwdApp,
    run_before: Callable[[Pilot[Any]], Awaitable[None]] = settle,
    terminal_size: tuple[int, int] = SIZE,
) -> bool:
    async def before(pilot: Pilot[Any]) -> None:
        await run_before(pilot)
        await steady(pilot)

    return snap_compare(app, terminal_size=terminal_size, run_before=before)


def make_app(manager: FakeManager | None = None, catalog: FakeCatalog | None = None) -> PortfwdApp:
    return PortfwdApp(
        manager or FakeManager(),
        catalog=catalog or FakeCatalog(),
        context="sandbox",
        cluster="sandbox",
        namespace="demo",
        clock=lambda: NOW,
        tz=UTC,
        open_url=lambda url: True,
    )


def test_dashboard_empty(snap_compare: SnapCompare) -> None:
    assert snap(snap_compare, make_app(), settle, SIZE)


def test_dashboard_mixed_states(snap_compare: SnapCompare) -> None:
    assert snap(snap_compare, make_app(FakeManager(mixed_snapshots())), settle, SIZE)


def test_dashboard_filtered(snap_compare: SnapCompare) -> None:
    async def run_before(pilot: Pilot[Any]) -> None:
        await settle(pilot)
        await pilot.press("slash", "w", "e", "b")
        await settle(pilot)

    assert snap(snap_compare, make_app(FakeManager(mixed_snapshots())), run_before, SIZE)


async def _to_step(pilot: Pilot[Any], keys: list[str]) -> None:
    await settle(pilot)
    await pilot.press("n")
    await settle(pilot)
    for key in keys:
        await pilot.press(key)
        await settle(pilot)


@pytest.mark.parametrize(
    ("name", "keys"),
    [
        ("context", []),
        ("namespace", ["enter"]),
        ("kind", ["enter", "enter"]),
        ("resource", ["enter", "enter", "enter"]),
        ("resource_filtered", ["enter", "enter", "enter", "e", "h"]),
        ("ports", ["enter", "enter", "enter", "enter"]),
        ("ports_marked", ["enter", "enter", "enter", "enter", "tab", "tab"]),
    ],
)
def test_picker_steps(snap_compare: SnapCompare, name: str, keys: list[str]) -> None:
    async def run_before(pilot: Pilot[Any]) -> None:
        await _to_step(pilot, keys)

    assert snap(snap_compare, make_app(), run_before, SIZE)


def test_picker_loading(snap_compare: SnapCompare) -> None:
    catalog = FakeCatalog()

    async def run_before(pilot: Pilot[Any]) -> None:
        catalog.gate = asyncio.Event()  # the context list never arrives
        await pilot.pause()
        await pilot.press("n")
        await pilot.pause()

    assert snap(snap_compare, make_app(catalog=catalog), run_before, SIZE)


def test_picker_error(snap_compare: SnapCompare) -> None:
    catalog = FakeCatalog()
    catalog.fail["resources"] = (
        'services is forbidden: User "nobody" cannot list resource "services" in namespace "demo"'
    )

    async def run_before(pilot: Pilot[Any]) -> None:
        await _to_step(pilot, ["enter", "enter", "enter"])

    assert snap(snap_compare, make_app(catalog=catalog), run_before, SIZE)


def test_picker_forbidden_namespaces(snap_compare: SnapCompare) -> None:
    async def run_before(pilot: Pilot[Any]) -> None:
        await _to_step(pilot, ["down", "enter", "s", "h"])

    assert snap(snap_compare, make_app(), run_before, SIZE)


def test_log_view(snap_compare: SnapCompare) -> None:
    manager = FakeManager(mixed_snapshots())
    for entry in log_entries():
        manager.log.setdefault("a", []).append(entry)

    async def run_before(pilot: Pilot[Any]) -> None:
        await settle(pilot)
        await pilot.press("l")
        await settle(pilot)

    assert snap(snap_compare, make_app(manager), run_before, SIZE)


def test_help(snap_compare: SnapCompare) -> None:
    async def run_before(pilot: Pilot[Any]) -> None:
        await settle(pilot)
        await pilot.press("question_mark")
        await settle(pilot)

    assert snap(snap_compare, make_app(), terminal_size=(150, 44), run_before=run_before)


def test_picker_local_step(snap_compare: SnapCompare, monkeypatch: pytest.MonkeyPatch) -> None:
    from portfwd.tui import ports
    from portfwd.tui.widgets import local_form

    async def suggest(remote: int, addresses: object, taken: object) -> int:
        return {80: 8080, 443: 8443}[remote]

    async def check(text: str, address: str, taken: object) -> ports.PortCheck:
        if text == "8443":
            return ports.PortCheck(False, "8443 is in use by another program")
        return ports.PortCheck(True, f"{address}:{text} is free")

    monkeypatch.setattr(local_form, "suggest_port", suggest)
    monkeypatch.setattr(ports, "check_port", check)

    async def run_before(pilot: Pilot[Any]) -> None:
        await _to_step(pilot, ["enter", "enter", "enter", "enter", "tab", "tab", "enter"])

    assert snap(snap_compare, make_app(), run_before, (150, 36))


def test_dashboard_error_selected_shows_full_reason(snap_compare: SnapCompare) -> None:
    async def run_before(pilot: Pilot[Any]) -> None:
        await settle(pilot)
        await pilot.press("down", "down", "down")
        await settle(pilot)

    assert snap(snap_compare, make_app(FakeManager(mixed_snapshots())), run_before)


def test_delete_confirm_dialog(snap_compare: SnapCompare) -> None:
    async def run_before(pilot: Pilot[Any]) -> None:
        await settle(pilot)
        await pilot.press("d")  # the first row is active: asks first
        await settle(pilot)

    assert snap(snap_compare, make_app(FakeManager(mixed_snapshots())), run_before)


def test_edit_dialog(snap_compare: SnapCompare, monkeypatch: pytest.MonkeyPatch) -> None:
    from portfwd.tui import ports

    async def check(text: str, address: str, taken: object) -> ports.PortCheck:
        return ports.PortCheck(False, f"{text} is in use by another program")

    monkeypatch.setattr(ports, "check_port", check)

    async def run_before(pilot: Pilot[Any]) -> None:
        await settle(pilot)
        await pilot.press("e", "backspace", "1")
        await settle(pilot)

    assert snap(snap_compare, make_app(FakeManager(mixed_snapshots())), run_before)


def test_log_view_of_a_reconnecting_forward(snap_compare: SnapCompare) -> None:
    """The title names the attempt and the reconnect count; the reason is under it."""
    manager = FakeManager(mixed_snapshots())

    async def run_before(pilot: Pilot[Any]) -> None:
        await settle(pilot)
        await pilot.press("down", "down", "l")
        await settle(pilot)

    assert snap(snap_compare, make_app(manager), run_before, (150, 12))


# -- every size (issue 12): nothing cut where it is said to fit --------------------------------


def two_contexts() -> list[ForwardSnapshot]:
    """The mixed states with long errors, one of them named, and a second `svc/echo` in
    another context (issue 18: the context tag tells the two apart at 80 columns)."""
    snaps = long_error_snapshots()
    first = snaps[0]
    named = replace(first, spec=replace(first.spec, name="echo"))
    other = replace(
        first,
        id="f",
        spec=replace(first.spec, context="kind-staging", local_port=9080, name=None),
        context="kind-staging",
        pod="echo-5f7c9-zxcvb",
        bound=(("127.0.0.1", 9080),),
        stats=ForwardStats(connections_open=0, connections_total=1, bytes_in=4096),
    )
    return [named, *snaps[1:], other]


def busy_manager() -> FakeManager:
    """The mixed states with long errors, connections and a log for the detail pane, in two
    contexts."""
    manager = FakeManager(two_contexts())
    manager.connections["a"] = [
        FakeConnection("127.0.0.1:51234", "echo-5f7c9-abcde", NOW - 185, 1_258_291, 10_240),
        FakeConnection("127.0.0.1:51240", "echo-5f7c9-abcde", NOW - 12, 314_573, 10_240),
    ]
    for entry in log_entries():
        manager.log.setdefault("a", []).append(entry)
    return manager


@pytest.mark.parametrize("size", SIZES, ids=SIZE_IDS)
def test_dashboard_at_every_size(snap_compare: SnapCompare, size: tuple[int, int]) -> None:
    async def run_before(pilot: Pilot[Any]) -> None:
        await settle(pilot)
        await pilot.press("down", "down", "down")  # svc/broken: its whole error below
        await settle(pilot)

    assert snap(snap_compare, make_app(busy_manager()), run_before, size)


@pytest.mark.parametrize("size", SIZES, ids=SIZE_IDS)
def test_detail_pane_at_every_size(snap_compare: SnapCompare, size: tuple[int, int]) -> None:
    async def run_before(pilot: Pilot[Any]) -> None:
        await settle(pilot)
        await pilot.press("i")
        await settle(pilot)

    assert snap(snap_compare, make_app(busy_manager()), run_before, size)


@pytest.mark.parametrize("size", SIZES, ids=SIZE_IDS)
def test_help_at_every_size(snap_compare: SnapCompare, size: tuple[int, int]) -> None:
    async def run_before(pilot: Pilot[Any]) -> None:
        await settle(pilot)
        await pilot.press("question_mark")
        await settle(pilot)

    assert snap(snap_compare, make_app(), run_before, size)


@pytest.mark.parametrize("size", SIZES, ids=SIZE_IDS)
def test_picker_last_step_at_every_size(
    snap_compare: SnapCompare, monkeypatch: pytest.MonkeyPatch, size: tuple[int, int]
) -> None:
    from portfwd.tui import ports
    from portfwd.tui.widgets import local_form

    async def suggest(remote: int, addresses: object, taken: object) -> int:
        return {80: 8080, 443: 8443}[remote]

    async def check(text: str, address: str, taken: object) -> ports.PortCheck:
        if text == "8443":
            return ports.PortCheck(False, "8443 is in use by another program")
        return ports.PortCheck(True, f"{address}:{text} is free")

    monkeypatch.setattr(local_form, "suggest_port", suggest)
    monkeypatch.setattr(ports, "check_port", check)

    async def run_before(pilot: Pilot[Any]) -> None:
        await _to_step(pilot, ["enter", "enter", "enter", "enter", "tab", "tab", "enter"])

    assert snap(snap_compare, make_app(), run_before, size)


@pytest.mark.parametrize("size", SIZES, ids=SIZE_IDS)
def test_resources_view_at_every_size(snap_compare: SnapCompare, size: tuple[int, int]) -> None:
    async def run_before(pilot: Pilot[Any]) -> None:
        await settle(pilot)
        await pilot.press("b")
        await settle(pilot)

    assert snap(snap_compare, make_app(FakeManager(mixed_snapshots())), run_before, size)


def test_port_dialog(snap_compare: SnapCompare) -> None:
    async def run_before(pilot: Pilot[Any]) -> None:
        await settle(pilot)
        await pilot.press("b")
        await settle(pilot)
        await pilot.press("enter")  # svc/api: two ports to choose from
        await settle(pilot)

    assert snap(snap_compare, make_app(FakeManager(mixed_snapshots())), run_before, (120, 40))
