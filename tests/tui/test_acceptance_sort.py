"""Acceptance: "sort by column" from the keyboard, on real forwards in mixed states (issue 3).

test_app.py sorts by calling `table.sort_by()` directly on 200 stopped forwards; the keys
users press (`s` cycles the column, `S` reverses) and every column's sort key on active,
stopped and failed forwards were not exercised.
"""

from __future__ import annotations

import pytest

from portfwd.engine.model import ForwardSpec, ForwardState
from tests.support.ports import reserved_port
from tests.tui.conftest import Harness
from tests.tui.helpers import settle, wait_until
from tests.tui.test_acceptance_keys import _plain_app

pytestmark = pytest.mark.timeout(60)


def _spec(target: str, remote: int | str = 80) -> ForwardSpec:
    return ForwardSpec(
        target=target,
        remote_port=remote,
        local_port=reserved_port(),
        namespace="demo",
        context="sandbox",
    )


async def test_s_cycles_every_column_and_shift_s_reverses(harness: Harness) -> None:
    app = _plain_app(harness)
    async with app.run_test(size=(200, 40)) as pilot:
        await settle(pilot)
        manager = app.engine
        web = await manager.add(_spec("svc/web"), start=False)
        echo = await manager.add(_spec("svc/echo"))
        gone = await manager.add(_spec("svc/nope"))
        await wait_until(
            pilot,
            lambda: (
                manager.get(echo).state is ForwardState.ACTIVE
                and manager.get(gone).state is ForwardState.ERROR
            ),
            what="one active, one error",
        )
        table = app.dashboard.table
        await wait_until(pilot, lambda: table.row_count == 3, what="3 rows")
        table.focus()
        await settle(pilot)
        assert table.sort_column is None and table.visible_ids() == [web, echo, gone]

        shown = table.shown_keys  # `s` goes through the columns on screen
        assert {"status", "target", "local", "remote", "conns", "error"} <= set(shown)
        seen: list[str | None] = []
        for _ in range(len(shown)):
            await pilot.press("s")
            await settle(pilot)
            seen.append(table.sort_column)
            assert table.row_count == 3
            if table.sort_column == "status":  # error, active, stopped
                assert table.visible_ids() == [gone, echo, web]
                await pilot.press("S")
                await settle(pilot)
                assert table.visible_ids() == [web, echo, gone]
                await pilot.press("S")
                await settle(pilot)
            if table.sort_column == "target":  # svc/echo < svc/nope < svc/web
                assert table.visible_ids() == [echo, gone, web]
                await pilot.press("S")
                await settle(pilot)
                assert table.visible_ids() == [web, gone, echo]
                await pilot.press("S")
                await settle(pilot)
        assert seen == list(shown)
        await pilot.press("s")  # wraps around to insertion order
        await settle(pilot)
        assert table.sort_column is None and table.visible_ids() == [web, echo, gone]
