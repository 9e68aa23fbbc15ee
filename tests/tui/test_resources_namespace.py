"""`N` in the browse view forwards the whole namespace it shows, as `portfwd ns` does: a
confirmation naming how many Services, then one spread forward per Service TCP port on the
Service's own loopback address and native port, shown on the dashboard."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path
from typing import Any

import pytest
from textual.pilot import Pilot

from portfwd.engine.model import ForwardState
from portfwd.reach.namespace_specs import forwardable
from portfwd.tui.screens.dialogs import ConfirmScreen
from portfwd.tui.screens.resources import ResourcesScreen
from tests.tui.conftest import Harness
from tests.tui.helpers import screen_text, settle, wait_until

pytestmark = pytest.mark.timeout(90)

SIZE = (160, 50)


def seed_addresses(config: Path, names: list[str]) -> dict[str, str]:
    """Addresses of this test process's own (by pid), so parallel tests binding the same
    Services' native ports never meet on one hashed address."""
    pid = os.getpid()
    net = f"127.{200 + (pid >> 8) % 50}.{pid & 255}"
    table = {f"sandbox/demo/{n}": f"{net}.{i}" for i, n in enumerate(sorted(names), 1)}
    config.mkdir(parents=True, exist_ok=True)
    (config / "reach-addresses.json").write_text(json.dumps(table))
    return {n: table[f"sandbox/demo/{n}"] for n in names}


async def open_resources(pilot: Pilot[Any]) -> ResourcesScreen:
    await pilot.press("b")
    screen = pilot.app.screen
    assert isinstance(screen, ResourcesScreen)
    await wait_until(pilot, lambda: "● live" in screen_text(pilot.app), what="the lists")
    await settle(pilot)
    return screen


async def http_get(address: str, port: int) -> bytes:
    reader, writer = await asyncio.open_connection(address, port)
    try:
        writer.write(b"GET /cluster HTTP/1.1\r\nHost: web.demo\r\nConnection: close\r\n\r\n")
        return await asyncio.wait_for(reader.read(), 15)
    finally:
        writer.close()


async def test_capital_n_forwards_every_service_of_the_namespace(
    harness: Harness, tmp_path: Path
) -> None:
    app = harness.app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        screen = await open_resources(pilot)
        services = forwardable(screen.view.rows)
        names = [r.name for r in services]
        assert {"echo", "web"} <= set(names) and "external-db" not in names
        addresses = seed_addresses(tmp_path / "config", names)
        await pilot.press("N")
        await settle(pilot)
        assert isinstance(app.screen, ConfirmScreen)
        assert f"Forward all {len(names)} Services of namespace demo" in screen_text(app)
        await pilot.press("y")

        def web() -> list[Any]:
            return [
                s
                for s in app.engine.snapshot()
                if s.spec.target == "svc/web" and s.state is ForwardState.ACTIVE
            ]

        await wait_until(pilot, lambda: bool(web()), what="web forwarded")
        [snap] = web()
        assert snap.spec.spread and snap.spec.addresses == (addresses["web"],)
        assert snap.local_port == 80  # its native port (the tests run as root)
        answer = await http_get(addresses["web"], 80)
        assert answer.startswith(b"HTTP/1.1 200") and answer.endswith(b"sandbox\n")
        targets = {s.spec.target for s in app.engine.snapshot()}
        assert targets == {f"svc/{n}" for n in names}
        # On the dashboard: one row per Service port, with its own address.
        await pilot.press("escape")
        await wait_until(
            pilot, lambda: f"{addresses['web']}:80" in screen_text(app), what="the dashboard row"
        )
        # Again: nothing left to forward, and nothing is added twice.
        count = len(app.engine.snapshot())
        await open_resources(pilot)
        await pilot.press("N")
        await settle(pilot)
        assert not isinstance(app.screen, ConfirmScreen)
        assert any("left to forward" in t for t in app.toasts)
        assert len(app.engine.snapshot()) == count
