"""Quick add (`:`) on the real engine and the sandbox: a typed line and a pasted kubectl line
each start a forward that moves bytes; a bad line says why under the prompt and adds nothing;
kinds, names and ports complete from the catalog."""

from __future__ import annotations

from typing import Any

import pytest
from textual.pilot import Pilot
from textual.widgets import Input

from portfwd.engine.model import ForwardState
from portfwd.tui.screens.dashboard import DashboardScreen
from portfwd.tui.screens.quick_add import QuickAddScreen
from tests.tui.conftest import Harness, free_port
from tests.tui.helpers import settle, wait_until
from tests.tui.test_app import SIZE, connect_echo, press

pytestmark = pytest.mark.timeout(90)


async def open_prompt(pilot: Pilot[Any]) -> QuickAddScreen:
    await press(pilot, "colon")
    screen = pilot.app.screen
    assert isinstance(screen, QuickAddScreen)
    return screen


async def submit(pilot: Pilot[Any], line: str) -> None:
    """Type the line (a paste arrives as text too) and press enter."""
    screen = await open_prompt(pilot)
    screen.query_one("#quick-add-input", Input).insert_text_at_cursor(line)
    await settle(pilot)
    await press(pilot, "enter")


async def test_typed_line_starts_a_forward_with_the_dashboards_defaults(
    harness: Harness,
) -> None:
    app = harness.app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        port = free_port()
        await submit(pilot, f"svc/echo {port}:80")
        assert isinstance(app.screen, DashboardScreen)
        await wait_until(
            pilot,
            lambda: any(s.state is ForwardState.ACTIVE for s in app.manager.snapshot()),
            what="the forward active",
        )
        (snap,) = app.manager.snapshot()
        assert (snap.spec.target, snap.spec.remote_port, snap.spec.local_port) == (
            "svc/echo",
            80,
            port,
        )
        assert (snap.spec.context, snap.spec.namespace) == ("sandbox", "demo")  # the dashboard's
        payload = b"quick" * 400
        assert await connect_echo(port, payload) == payload


async def test_pasted_kubectl_line_starts_a_forward(harness: Harness) -> None:
    app = harness.app(namespace="default")  # the line's -n wins over the dashboard's
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        port = free_port()
        await submit(
            pilot,
            "kubectl --context sandbox port-forward svc/echo"
            f" -n demo --address 127.0.0.1 {port}:80",
        )
        await wait_until(
            pilot,
            lambda: any(s.state is ForwardState.ACTIVE for s in app.manager.snapshot()),
            what="the forward active",
        )
        (snap,) = app.manager.snapshot()
        assert (snap.spec.namespace, snap.spec.addresses) == ("demo", ("127.0.0.1",))
        assert await connect_echo(port, b"pasted") == b"pasted"


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("svc/echo", "no port given"),
        ("svc/echo 99999:80", "99999"),
        ("kubectl get pods", "port-forward"),
    ],
)
async def test_bad_line_shows_the_error_and_adds_nothing(
    harness: Harness, line: str, expected: str
) -> None:
    app = harness.app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await submit(pilot, line)
        screen = app.screen
        assert isinstance(screen, QuickAddScreen)  # still open, with the reason
        assert expected in screen.error, screen.error
        assert app.manager.snapshot() == []
        await press(pilot, "x")  # typing again clears it
        assert screen.error == ""
        await press(pilot, "escape")
        assert isinstance(app.screen, DashboardScreen)
        assert app.manager.snapshot() == []


async def test_completes_kinds_names_and_ports(harness: Harness) -> None:
    app = harness.app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        screen = await open_prompt(pilot)
        box = screen.query_one("#quick-add-input", Input)

        async def accept(text: str, want: str) -> None:
            await pilot.press(*list(text))
            await wait_until(pilot, lambda: box._suggestion == want, what=f"suggestion {want}")
            await press(pilot, "right")  # accepts the suggestion
            assert box.value == want

        await accept("s", "svc/")
        await accept("ech", "svc/echo")
        await accept(" 8", "svc/echo 80")
        await accept(" 18080:", "svc/echo 80 18080:80")
