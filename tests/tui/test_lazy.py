"""Lazy forwards in the dashboard: `z` turns lazy on and off, an idle forward reads `◌ idle`
(and the SVG of a dashboard with an idle row)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
from textual.pilot import Pilot

from portfwd.engine.model import ForwardSnapshot, ForwardState, ForwardStats
from portfwd.tui.format import STATUS_STYLE, status_text
from tests.tui.fakes import FakeManager, mixed_snapshots
from tests.tui.helpers import settle, wait_until
from tests.tui.test_reconnect import SIZE, Clock, make_app, retrying, status_of
from tests.tui.test_snapshots import SnapCompare, snap
from tests.tui.test_snapshots import make_app as snapshot_app

pytestmark = pytest.mark.timeout(60)


def idle_row() -> ForwardSnapshot:
    """A lazy forward asleep: bound, no pod, no tunnel."""
    active = mixed_snapshots()[0]
    return replace(
        active,
        id="z",
        spec=replace(active.spec, target="svc/api", local_port=8443, lazy=True),
        state=ForwardState.IDLE,
        pod="",
        remote_port=0,
        bound=(("127.0.0.1", 8443),),
        started_at=None,
        stats=ForwardStats(connections_total=3, bytes_in=4096, bytes_out=512),
    )


def test_idle_reads_as_a_word_and_a_colour() -> None:
    assert str(status_text(ForwardState.IDLE)) == "◌ idle"
    assert STATUS_STYLE[ForwardState.IDLE][1] != STATUS_STYLE[ForwardState.STARTING][1]


async def test_z_toggles_lazy_and_an_idle_row_says_idle() -> None:
    manager = FakeManager([retrying(state=ForwardState.ACTIVE, attempt=0, next_retry_at=None)])
    app = make_app(manager, Clock())
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("z")
        await settle(pilot)
        assert ("update", "w") in manager.calls
        assert manager.get("w").spec.lazy is True
        assert "lazy on for svc/web" in app.toasts
        manager.set(replace(manager.get("w"), state=ForwardState.IDLE, pod="", started_at=None))
        await wait_until(pilot, lambda: status_of(app, "w") == "◌ idle", what="idle")
        await pilot.press("z")
        await settle(pilot)
        assert manager.get("w").spec.lazy is False
        assert "lazy off for svc/web" in app.toasts


def test_dashboard_with_an_idle_row(snap_compare: SnapCompare) -> None:
    async def run_before(pilot: Pilot[Any]) -> None:
        await settle(pilot)

    manager = FakeManager([*mixed_snapshots(), idle_row()])
    assert snap(snap_compare, snapshot_app(manager), run_before)
