"""Auto-reconnect in the dashboard: the retry countdown, the per-forward toggle (`a`), its
mark, the reason and counts in the detail line and the log view, the picker's checkbox."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC
from typing import Any

import pytest
from textual.widgets import Checkbox, Input, Static

from portfwd.engine.model import ForwardSnapshot, ForwardSpec, ForwardState, ForwardStats
from portfwd.tui.app import PortfwdApp
from portfwd.tui.screens.logs import LogScreen
from portfwd.tui.screens.picker import NewForwardScreen
from tests.tui.conftest import Harness, RecordingApp
from tests.tui.fakes import NOW, FakeCatalog, FakeManager
from tests.tui.helpers import collapsed, screen_text, settle, wait_until

pytestmark = pytest.mark.timeout(60)

SIZE = (160, 30)


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> float:
        return self.now


def retrying(**kw: Any) -> ForwardSnapshot:
    snap = ForwardSnapshot(
        id="w",
        spec=ForwardSpec(
            target="svc/web", remote_port=80, local_port=8081, namespace="demo", context="sandbox"
        ),
        state=ForwardState.RECONNECTING,
        context="sandbox",
        namespace="demo",
        pod="web-1",
        remote_port=8080,
        bound=(("127.0.0.1", 8081),),
        started_at=NOW - 60,
        reason="pod web-1 was deleted; no other Ready pod behind svc/web",
        attempt=3,
        next_retry_at=NOW + 3.5,
        stats=ForwardStats(reconnects=2),
    )
    return replace(snap, **kw)


def make_app(manager: FakeManager, clock: Clock) -> RecordingApp:
    return RecordingApp(
        manager,
        catalog=FakeCatalog(),
        context="sandbox",
        cluster="sandbox",
        namespace="demo",
        clock=clock,
        tz=UTC,
        open_url=lambda url: True,
    )


def status_of(app: PortfwdApp, fid: str) -> str:
    return str(app.dashboard.table.get_cell(fid, "status"))


def detail(app: PortfwdApp) -> str:
    return collapsed(screen_text(app).split("\n", 2)[-1])  # the screen below the header


async def test_a_retrying_forward_counts_down_to_its_next_try() -> None:
    clock = Clock()
    manager = FakeManager([retrying()])
    app = make_app(manager, clock)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        assert status_of(app, "w") == "↻ reconnecting #3 · 4s"
        assert "↻ reconnecting #3 · 4s" in detail(app)
        assert "2 reconnects" in detail(app)
        assert "pod web-1 was deleted" in detail(app)  # the reason, in full
        clock.now += 2  # the dashboard's own 1 s tick repaints it
        await wait_until(
            pilot, lambda: status_of(app, "w") == "↻ reconnecting #3 · 2s", what="countdown"
        )
        await wait_until(pilot, lambda: "#3 · 2s" in detail(app), what="detail countdown")
        # The engine's next attempt: a new count and a new timer.
        manager.set(retrying(attempt=4, next_retry_at=clock.now + 7.2))
        await wait_until(
            pilot, lambda: status_of(app, "w") == "↻ reconnecting #4 · 8s", what="next attempt"
        )
        # Waiting for a watch event only (no timer): no countdown.
        manager.set(retrying(attempt=0, next_retry_at=None, reason="waiting for a Ready pod"))
        await wait_until(pilot, lambda: status_of(app, "w") == "↻ reconnecting", what="no timer")
        manager.set(retrying(state=ForwardState.ACTIVE, attempt=0, next_retry_at=None, reason=""))
        await wait_until(pilot, lambda: status_of(app, "w") == "● active", what="active again")


async def test_a_toggles_auto_reconnect_and_the_row_is_marked() -> None:
    clock = Clock()
    manager = FakeManager([retrying(state=ForwardState.ACTIVE, attempt=0, next_retry_at=None)])
    app = make_app(manager, clock)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        assert status_of(app, "w") == "● active"
        await pilot.press("a")
        await settle(pilot)
        assert ("reconnect off", "w") in manager.calls
        assert manager.get("w").spec.reconnect is False
        assert "auto-reconnect off for svc/web" in app.toasts
        await wait_until(pilot, lambda: status_of(app, "w") == "● active ⊘", what="mark")
        assert "auto-reconnect off" in detail(app)
        await pilot.press("a")
        await settle(pilot)
        assert manager.calls[-1] == ("reconnect on", "w")
        assert "auto-reconnect on for svc/web" in app.toasts
        await wait_until(pilot, lambda: status_of(app, "w") == "● active", what="mark gone")


async def test_the_log_view_shows_the_attempt_the_reason_and_the_count() -> None:
    manager = FakeManager([retrying(spec=replace(retrying().spec, reconnect=False))])
    app = make_app(manager, Clock())
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("l")
        await settle(pilot)
        assert isinstance(app.screen, LogScreen)
        title = str(app.screen.query_one("#log-title", Static).render())
        assert "[reconnecting #3]" in title
        assert "2 reconnects · ⊘ auto-reconnect off" in title
        assert "pod web-1 was deleted; no other Ready pod behind svc/web" in title


async def test_the_picker_can_start_a_forward_without_auto_reconnect(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from portfwd.tui import ports
    from portfwd.tui.widgets import local_form

    async def suggest(remote: int, addresses: object, taken: object) -> int:
        return 18080

    async def check(text: str, address: str, taken: object) -> ports.PortCheck:
        return ports.PortCheck(True, f"{address}:{text} is free")

    monkeypatch.setattr(local_form, "suggest_port", suggest)
    monkeypatch.setattr(ports, "check_port", check)
    manager = FakeManager()
    app = make_app(manager, Clock())
    async with app.run_test(size=(150, 40)) as pilot:
        await settle(pilot)
        for key in ("n", "enter", "enter", "enter", "enter", "enter"):
            await pilot.press(key)
            await settle(pilot)
        screen = app.screen
        assert isinstance(screen, NewForwardScreen) and screen.step == "local"
        box = screen.query_one("#local-reconnect", Checkbox)
        assert box.value is True  # on unless unticked
        await pilot.press("tab", "tab")  # local port -> address -> the checkbox
        assert app.focused is box
        await pilot.press("space")
        assert box.value is False
        screen.query_one("#local-80", Input).focus()
        await wait_until(pilot, lambda: not screen.query_one("#start").disabled, what="checked")
        await pilot.press("enter")
        await wait_until(pilot, lambda: bool(manager.forwards), what="added")
        (snap,) = manager.snapshot()
        assert snap.spec.reconnect is False
        await wait_until(pilot, lambda: status_of(app, snap.id).endswith("⊘"), what="mark")


# -- on the real engine (needs Manager.set_reconnect) -------------------------------------


async def test_toggle_on_the_real_engine(harness: Harness) -> None:
    app = harness.app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        spec = ForwardSpec(target="svc/echo", remote_port=80, namespace="demo", context="sandbox")
        fid = await app.engine.add(spec, start=True)
        await wait_until(
            pilot, lambda: app.engine.get(fid).state is ForwardState.ACTIVE, what="active"
        )
        app.dashboard.select(fid)
        await pilot.press("a")
        await settle(pilot)
        assert app.engine.get(fid).spec.reconnect is False
        assert app.engine.get(fid).state is ForwardState.ACTIVE  # not restarted
        await wait_until(pilot, lambda: status_of(app, fid).endswith("⊘"), what="mark")
        await pilot.press("q")
        await wait_until(pilot, lambda: app.return_code == 0, what="exit")
    # The session remembers it.
    saved = harness.state_path.read_text()
    assert "reconnect: false" in saved
