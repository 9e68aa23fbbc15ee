"""The resources view (`b`) on the sandbox: the namespace's services, pods, deployments and
statefulsets, live from watches; `f` on one starts a forward through the port dialog; a lost
API server is said on screen, and the list comes back by itself."""

from __future__ import annotations

from typing import Any

import pytest
from textual.pilot import Pilot
from textual.widgets import Input

from portfwd.engine.model import ForwardSpec, ForwardState
from portfwd.tui.screens.forward_dialog import ForwardDialog
from portfwd.tui.screens.resources import ResourcesScreen
from tests.support.ports import reserved_port
from tests.tui.conftest import Harness
from tests.tui.helpers import screen_lines, screen_text, settle, wait_until

pytestmark = pytest.mark.timeout(90)

SIZE = (120, 40)


def row_of(pilot: Pilot[Any], kind: str, name: str) -> str | None:
    return next(
        (
            line
            for line in screen_lines(pilot.app)
            if line.split()[:2] == [kind, name] or line.lstrip().startswith(f"{kind}  {name} ")
        ),
        None,
    )


async def open_resources(pilot: Pilot[Any]) -> ResourcesScreen:
    await pilot.press("b")
    screen = pilot.app.screen
    assert isinstance(screen, ResourcesScreen)
    await wait_until(pilot, lambda: "● live" in screen_text(pilot.app), what="the lists")
    await settle(pilot)
    return screen


async def test_lists_every_kind_live_with_status_and_ports(harness: Harness) -> None:
    app = harness.app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await open_resources(pilot)
        echo = row_of(pilot, "svc", "echo")
        assert echo is not None and "2/2" in echo and "tcp:80" in echo
        web = row_of(pilot, "deploy", "web")
        assert web is not None and "2/3" in web and "Progressing" in web
        crashy = row_of(pilot, "pod", "crashy")
        assert crashy is not None and "CrashLoopBackOff" in crashy and "http:8080" in crashy
        assert row_of(pilot, "svc", "dns") is not None and "dns:53/UDP" in screen_text(app)
        # Live: a pod deleted in the cluster leaves the list by itself.
        assert row_of(pilot, "pod", "toolbox") is not None
        await harness.sandbox.delete_object("pods", "demo", "toolbox")
        await wait_until(pilot, lambda: row_of(pilot, "pod", "toolbox") is None, what="gone")
        # 2: pods only.
        await pilot.press("2")
        await settle(pilot)
        kinds = {line.split()[0] for line in screen_lines(app) if line.startswith(" pod ")}
        assert kinds == {"pod"} and row_of(pilot, "svc", "echo") is None


async def test_f_forwards_the_selected_resource_through_the_port_dialog(
    harness: Harness,
) -> None:
    app = harness.app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        screen = await open_resources(pilot)
        await pilot.press("slash", *"echo")
        await settle(pilot)
        await pilot.press("enter")  # leaves the filter box
        await settle(pilot)
        assert screen.table.selected_key == "service/echo"
        await pilot.press("f")
        await settle(pilot)
        dialog = app.screen
        assert isinstance(dialog, ForwardDialog) and dialog.step == "local"  # one port only
        port = reserved_port()
        dialog.query_one("#local-80", Input).value = str(port)
        await wait_until(
            pilot, lambda: f"✓ localhost:{port} is free" in screen_text(app), what="checked"
        )
        await pilot.press("enter")
        await wait_until(
            pilot,
            lambda: any(
                s.local_port == port and s.state is ForwardState.ACTIVE
                for s in app.engine.snapshot()
            ),
            what="the forward active",
        )
        assert app.screen is screen  # still browsing
        await wait_until(
            pilot,
            lambda: (r := row_of(pilot, "svc", "echo")) is not None and f"● {port}" in r,
            what="the row marked as forwarded",
        )


async def test_a_lost_api_server_is_said_and_the_list_comes_back(harness: Harness) -> None:
    app = harness.app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await open_resources(pilot)
        await harness.sandbox.stop_api()
        try:
            await wait_until(
                pilot,
                lambda: (
                    "retrying in" in screen_text(app)
                    and "rows shown are the last known" in screen_text(app)
                ),
                what="the watch's error",
            )
            assert row_of(pilot, "svc", "echo") is not None  # kept, and said to be old
        finally:
            await harness.sandbox.start_api()
        await pilot.press("ctrl+r")
        await wait_until(
            pilot,
            lambda: "● live" in screen_text(app) and "retrying" not in screen_text(app),
            what="live again",
        )


async def test_at_80_columns_ports_are_shown_not_traded_for_the_age(harness: Harness) -> None:
    """Seen in tmux at 80x24 on the demo: Ports, one cell short, was dropped and Age (less
    important) took its place; a long name is cut instead."""
    app = harness.app()
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        spec = ForwardSpec(
            target="svc/echo",
            remote_port=80,
            namespace="demo",
            context="sandbox",
        )
        fid = await app.engine.add(spec)
        await wait_until(
            pilot, lambda: app.engine.get(fid).state is ForwardState.ACTIVE, what="active"
        )
        await open_resources(pilot)
        head = next(line for line in screen_lines(app) if "Kind" in line and "Name" in line)
        assert "Ports" in head and "Age" not in head, head
        echo = row_of(pilot, "svc", "echo")
        assert echo is not None and "tcp:80" in echo, screen_text(app)
