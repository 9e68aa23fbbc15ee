"""Several forwards at once (`m`): mark some, start them together, stop every one; on the
real engine and the sandbox, bytes through the started ones."""

from __future__ import annotations

import pytest

from portfwd.engine.model import ForwardState
from portfwd.tui.screens.bulk import BulkScreen
from portfwd.tui.screens.dashboard import DashboardScreen
from tests.support.ports import reserved_port
from tests.tui.conftest import Harness
from tests.tui.helpers import settle, wait_until
from tests.tui.test_app import SIZE, connect_echo, echo_spec, press

pytestmark = pytest.mark.timeout(90)


async def test_mark_several_then_start_and_stop_them(harness: Harness) -> None:
    app = harness.app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        one, two, three = reserved_port(), reserved_port(), reserved_port()
        ids = [await app.engine.add(echo_spec(p), start=False) for p in (one, two, three)]
        await press(pilot, "m")
        screen = app.screen
        assert isinstance(screen, BulkScreen)
        await press(pilot, "space", "down", "space")  # the first two
        assert screen.marked == ids[:2]
        await press(pilot, "s")
        assert isinstance(app.screen, DashboardScreen)

        def states() -> list[ForwardState]:
            return [app.engine.get(i).state for i in ids]

        active, stopped = ForwardState.ACTIVE, ForwardState.STOPPED
        await wait_until(pilot, lambda: states() == [active, active, stopped], what="two")
        assert await connect_echo(one, b"1") == b"1"
        assert await connect_echo(two, b"2") == b"2"
        await press(pilot, "m", "x")  # none marked: every forward
        await wait_until(pilot, lambda: states() == [stopped] * 3, what="all stopped")
