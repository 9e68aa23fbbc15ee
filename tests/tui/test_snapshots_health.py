"""SVG snapshots of the detail pane's "Health per layer" block (issue 19 §1): a degraded
forward whose probe fails, with the tunnel's PING, an exec credential's countdown and the
last bytes, at 80x24 and 200x50. Update with `--snapshot-update` after an intended change."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
from textual.pilot import Pilot

from portfwd.engine.model import ForwardState, HealthFacts
from portfwd.tui.widgets.detail_pane import DetailPane
from tests.tui.fakes import NOW, FakeManager, mixed_snapshots
from tests.tui.helpers import settle
from tests.tui.test_snapshots import SnapCompare, make_app, snap

pytestmark = pytest.mark.timeout(60)


def degraded_manager() -> FakeManager:
    first, *rest = mixed_snapshots()
    facts = HealthFacts(
        listening_at=NOW - 3725,
        resolved_at=NOW - 3725,
        pod_ready=True,
        ping_at=NOW - 4,
        ping_rtt=0.0031,
        verified_at=NOW - 3725,
        probe_at=NOW - 2,
        probe_ok=False,
        probe_result="HTTP 503 Service Unavailable",
        probe_ok_at=NOW - 62,
        credential="exec plugin token",
        credential_expires_at=NOW + 754,
        credential_refreshed_at=NOW - 146,
        last_in_at=NOW - 3,
        last_out_at=NOW - 5,
    )
    degraded = replace(
        first,
        spec=replace(first.spec, probe="http:/healthz", probe_interval=10),
        state=ForwardState.DEGRADED,
        reason="probe http:/healthz: HTTP 503 Service Unavailable",
        health=facts,
    )
    return FakeManager([degraded, *rest])


@pytest.mark.parametrize("size", [(80, 24), (200, 50)], ids=["80x24", "200x50"])
def test_health_block(snap_compare: SnapCompare, size: tuple[int, int]) -> None:
    async def run_before(pilot: Pilot[Any]) -> None:
        await settle(pilot)
        await pilot.press("i")
        await settle(pilot)
        if size[1] < 30:  # a small pane: scroll the block into view, as a user would
            pane = pilot.app.screen.query_one(DetailPane)
            pane.scroll_to(y=6, animate=False)
            await settle(pilot)

    assert snap(snap_compare, make_app(degraded_manager()), run_before, size)
