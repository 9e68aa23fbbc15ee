"""Acceptance: the picker's local port "defaults to the remote port if free, otherwise the
next free one" (issue 3), through the real picker on the sandbox.

test_app.py covers only the taken case, and only as "some larger port"; here both cases are
pinned to the exact port a user would see, and the suggestion is what gets started.
"""

from __future__ import annotations

import socket
from typing import Any

import pytest
from textual.pilot import Pilot
from textual.widgets import Input, OptionList

from portfwd.engine.catalog import PortChoice
from portfwd.tui.app import PortfwdApp
from portfwd.tui.screens.picker import NewForwardScreen
from tests.support.ports import reserved_pair
from tests.tui.conftest import Harness
from tests.tui.helpers import settle, wait_until
from tests.tui.test_acceptance_keys import _plain_app

pytestmark = pytest.mark.timeout(60)


async def _to_local_step(pilot: Pilot[Any], app: PortfwdApp, remote: int) -> NewForwardScreen:
    async def ports(*args: Any) -> list[PortChoice]:
        return [PortChoice(remote, "tcp", "TCP")]

    app.catalog.ports = ports  # type: ignore[method-assign]
    await pilot.press("n")
    await settle(pilot)
    screen = app.screen
    assert isinstance(screen, NewForwardScreen)
    for key in ("enter", "enter", "enter"):  # context, namespace (demo), kind (service)
        await pilot.press(key)
        await settle(pilot)
    await pilot.press(*"echo")
    await settle(pilot)
    await pilot.press("enter")  # resource: one TCP port, so no port step (issue 18)
    await settle(pilot)
    assert screen.step == "local" and screen.skipped_port_step
    return screen


async def test_free_remote_port_is_the_default(harness: Harness) -> None:
    remote, _ = reserved_pair()
    app = _plain_app(harness)
    async with app.run_test(size=(160, 40)) as pilot:
        await settle(pilot)
        screen = await _to_local_step(pilot, app, remote)
        assert screen.query_one(f"#local-{remote}", Input).value == str(remote)


async def test_taken_remote_port_suggests_the_next_free_one(
    harness: Harness,
) -> None:
    remote, following = reserved_pair()
    with socket.socket() as holder:  # listening: in use (reserved_pair lets it bind)
        holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        holder.bind(("127.0.0.1", remote))
        holder.listen()
        app = _plain_app(harness)
        async with app.run_test(size=(160, 40)) as pilot:
            await settle(pilot)
            screen = await _to_local_step(pilot, app, remote)
            assert screen.query_one(f"#local-{remote}", Input).value == str(following)
            await pilot.press("enter")  # start with the suggestion
            await wait_until(pilot, lambda: bool(app.engine.snapshot()), what="added")
            # The spec carries the suggested port (the catalog's made-up service port does not
            # resolve on the sandbox, so the forward itself ends in error: not checked here).
            assert app.engine.snapshot()[0].spec.local_port == following
            await pilot.press("q")
            await wait_until(pilot, lambda: app.return_code == 0, what="exit")


@pytest.mark.parametrize(
    ("typed", "kind", "prefix"),
    [("rs", "replicaset", "rs/web-"), ("deploy.apps", "deployment", "deploy/web")],
)
async def test_a_kind_typed_as_kubectl_spells_it(
    harness: Harness, typed: str, kind: str, prefix: str
) -> None:
    """`rs/x` works in `portfwd forward`; the picker's kinds once had no ReplicaSet at all.
    It is not listed unasked (a Deployment's ReplicaSets crowd the list), typing it offers it."""
    app = _plain_app(harness)
    async with app.run_test(size=(160, 40)) as pilot:
        await settle(pilot)
        await pilot.press("n")
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, NewForwardScreen)
        for key in ("enter", "enter"):  # context, namespace (demo)
            await pilot.press(key)
            await settle(pilot)
        assert screen.step == "kind"
        choices = screen.query_one("#choices", OptionList)
        shown = [choices.get_option_at_index(i).id or "" for i in range(choices.option_count)]
        assert shown and not any("replicaset" in key for key in shown)
        screen.query_one("#query", Input).insert_text_at_cursor(typed)
        await settle(pilot)
        await pilot.press("enter")
        await wait_until(pilot, lambda: screen.step == "resource", what="the resource step")
        assert screen.kind == kind
        await wait_until(pilot, lambda: screen.state == "ready", what="the list")
        await pilot.press(*"web", "enter")
        # web has one port: the picker goes straight to the local step
        await wait_until(pilot, lambda: screen.step == "local", what="the local step")
        await settle(pilot)
        await pilot.press("enter")  # start with the suggested port
        await wait_until(pilot, lambda: bool(app.engine.snapshot()), what="added")
        assert app.engine.snapshot()[0].spec.target.startswith(prefix)
