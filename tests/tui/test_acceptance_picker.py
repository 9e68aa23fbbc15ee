"""Acceptance: the picker's local port "defaults to the remote port if free, otherwise the
next free one" (issue 3), through the real picker on the sandbox.

test_app.py covers only the taken case, and only as "some larger port"; here both cases are
pinned to the exact port a user would see, and the suggestion is what gets started.
"""

from __future__ import annotations

import random
import socket
from typing import Any

import pytest
from textual.pilot import Pilot
from textual.widgets import Input

from portfwd.engine.catalog import PortChoice
from portfwd.tui.app import PortfwdApp
from portfwd.tui.screens.picker import NewForwardScreen
from tests.tui.conftest import Harness
from tests.tui.helpers import settle, wait_until
from tests.tui.test_acceptance_keys import _plain_app

pytestmark = pytest.mark.timeout(60)


def _is_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def _free_pair() -> tuple[int, int]:
    """A port P held by nobody, with P+1 free as well.

    Picked below Linux's ephemeral range (32768+): the app's own outgoing connections to the
    sandbox take ephemeral ports and could grab P+1 between the pick and the check."""
    rng = random.Random()
    for _ in range(200):
        port = rng.randrange(20000, 32000)
        if _is_free(port) and _is_free(port + 1):
            return port, port + 1
    pytest.skip("no two adjacent free ports")


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
    await pilot.press("enter")  # resource
    await settle(pilot)
    assert screen.step == "port"
    await pilot.press("enter")
    await settle(pilot)
    assert screen.step == "local"
    return screen


async def test_free_remote_port_is_the_default(harness: Harness) -> None:
    remote, _ = _free_pair()
    app = _plain_app(harness)
    async with app.run_test(size=(160, 40)) as pilot:
        await settle(pilot)
        screen = await _to_local_step(pilot, app, remote)
        assert screen.query_one(f"#local-{remote}", Input).value == str(remote)


async def test_taken_remote_port_suggests_the_next_free_one(
    harness: Harness,
) -> None:
    remote, following = _free_pair()
    with socket.socket() as holder:
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
        assert screen.step == "kind" and not any("replicaset" in i.key for i in screen._visible)
        screen.query_one("#query", Input).insert_text_at_cursor(typed)
        await settle(pilot)
        await pilot.press("enter")
        await wait_until(pilot, lambda: screen.step == "resource", what="the resource step")
        assert screen.kind == kind
        await wait_until(pilot, lambda: screen.state == "ready", what="the list")
        await pilot.press(*"web", "enter")
        await wait_until(pilot, lambda: screen.step == "port", what="the port step")
        await wait_until(pilot, lambda: screen.state == "ready", what="the ports")
        await pilot.press("enter")
        await wait_until(pilot, lambda: screen.step == "local", what="the local step")
        await settle(pilot)
        await pilot.press("enter")  # start with the suggested port
        await wait_until(pilot, lambda: bool(app.engine.snapshot()), what="added")
        assert app.engine.snapshot()[0].spec.target.startswith(prefix)
