"""The detail pane (`i`) on the real engine and the sandbox: the selected forward's pod and
node, the connections open now with their age and bytes, what happened to it while the window
watched (a pod switch), and its recent log; `i` again folds it back to the summary.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import pytest
from textual.pilot import Pilot

from portfwd.engine.model import ForwardSpec, ForwardState
from tests.tui.conftest import Harness
from tests.tui.helpers import collapsed, screen_text, settle, wait_until

pytestmark = pytest.mark.timeout(90)


def pane(pilot: Pilot[Any]) -> str:
    return collapsed(screen_text(pilot.app))


async def test_details_show_pod_node_connections_history_and_log(harness: Harness) -> None:
    app = harness.app()
    async with app.run_test(size=(120, 50)) as pilot:
        await settle(pilot)
        spec = ForwardSpec("svc/echo", 80, namespace="demo", context="sandbox")
        fid = await app.engine.add(spec, start=True)
        await wait_until(pilot, lambda: app.engine.get(fid).state is ForwardState.ACTIVE)
        port = app.engine.get(fid).local_port  # what it bound (asked for 0)
        await settle(pilot)
        app.dashboard.select(fid)
        pod = app.engine.get(fid).pod
        node = harness.sandbox.store.get("pods", "demo", pod)["spec"]["nodeName"]
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            writer.write(b"x" * 3000)
            await writer.drain()
            await asyncio.wait_for(reader.readexactly(3000), 20)
            await pilot.press("i")
            await wait_until(
                pilot,
                lambda: "Connections open now (1)" in pane(pilot) and f"node {node}" in pane(pilot),
                what="the connection and the node",
            )
            text = pane(pilot)
            assert f"pod {pod}" in text
            assert "wire SPDY over WebSocket" in text  # which protocol carries it (auto)
            assert f"{pod} 0s" in text or f"{pod} 1s" in text  # to which pod, and its age
            assert "2.9 KiB 2.9 KiB" in text  # its bytes each way
            assert "Forwarding from 127.0.0.1:" in text  # the recent log
            assert f"● active on pod {pod}" in text  # the history: it started on that pod
            # The pod goes away: the forward follows, and the pane says so.
            await harness.sandbox.delete_pod("demo", pod)
            await wait_until(
                pilot,
                lambda: (
                    app.engine.get(fid).pod not in ("", pod)
                    and app.engine.get(fid).state is ForwardState.ACTIVE
                ),
                what="another pod",
            )
            new_pod = app.engine.get(fid).pod
            await wait_until(
                pilot, lambda: f"pod {pod} → {new_pod}" in pane(pilot), what="the history"
            )
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
        await pilot.press("i")
        await settle(pilot)
        assert "Connections open now" not in pane(pilot)
        assert f"svc/echo in demo (sandbox) · pod {new_pod}" in pane(pilot)  # the summary
