"""A profile with `namespaces:` entries started from the profiles view (`p`): its forwards
start, and a toast says its whole namespaces are `portfwd up`'s (not silently left out)."""

from __future__ import annotations

from pathlib import Path

import pytest

from portfwd.engine.model import ForwardState
from tests.tui.conftest import Harness
from tests.tui.helpers import settle, wait_until
from tests.tui.test_app import SIZE, press
from tests.tui.test_profiles_view import open_view

pytestmark = pytest.mark.timeout(90)


async def test_starting_a_profile_says_its_namespaces_are_left_to_up(
    harness: Harness, tmp_path: Path
) -> None:
    config = tmp_path / "config"
    config.mkdir(exist_ok=True)
    path = config / "profiles.yaml"
    path.write_text(
        """\
profiles:
  mixed:
    defaults: {context: sandbox, namespace: demo, address: 127.0.0.1}
    namespaces:
      - {namespace: data}
    forwards:
      - {name: echo, target: svc/echo, ports: [":80"]}
"""
    )
    path.chmod(0o600)
    app = harness.app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        screen = await open_view(pilot)
        screen.select_row("mixed")
        await press(pilot, "enter")
        await wait_until(
            pilot,
            lambda: any(
                s.spec.name == "echo" and s.state is ForwardState.ACTIVE
                for s in app.engine.snapshot()
            ),
            what="echo active",
        )
        assert any(
            "whole namespaces (data) are not started here: `portfwd up mixed` runs them" in t
            for t in app.toasts
        )
        assert len(app.engine.snapshot()) == 1
