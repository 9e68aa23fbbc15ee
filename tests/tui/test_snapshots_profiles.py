"""SVG snapshots of the profiles view, the quick add prompt and the several-forwards list
(fixed data, fake engine), at 80x24 and 120x40. Update with `--snapshot-update`, then look
at the SVGs before committing."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from textual.pilot import Pilot
from textual.widgets import Input

from portfwd.engine.model import ForwardSpec
from portfwd.tui.screens.profiles import ProfilesScreen
from tests.tui.fakes import FakeManager, mixed_snapshots
from tests.tui.helpers import settle, wait_until
from tests.tui.test_snapshots import SnapCompare, make_app, snap

pytestmark = pytest.mark.timeout(60)

SIZES = [(80, 24), (120, 40)]

PROFILES = """# team forwards
version: 1
profiles:
  demo:
    description: the demo services, two clusters
    defaults:
      context: sandbox
      namespace: demo
    forwards:
      - name: echo
        target: svc/echo
        ports: ["18080:80"]
      - name: web
        target: svc/web
        ports: [":80"]
      - name: echo-2
        target: svc/echo
        ports: ["18081:80"]
        context: sandbox-2
    groups:
      echoes: [echo, echo-2]
      frontend: [web]
  staging:
    description: staging API
    forwards:
      - name: api
        target: deploy/api
        ports: ["18443:https", ":metrics"]
        context: sandbox
  broken:
    forwards:
      - name: db
        target: svc/db
        namspace: demo
        ports: ["5432"]
"""


@pytest.fixture
def profiles_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)  # the view shows the path relative to here: profiles.yaml
    monkeypatch.setenv("PORTFWD_CONFIG_DIR", str(tmp_path))
    path = tmp_path / "profiles.yaml"
    path.write_text(PROFILES)
    path.chmod(0o600)
    return path


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_profiles_view(
    snap_compare: SnapCompare, profiles_file: Path, size: tuple[int, int]
) -> None:
    manager = FakeManager()

    async def run_before(pilot: Pilot[Any]) -> None:
        await settle(pilot)
        spec = ForwardSpec(
            target="svc/echo",
            remote_port=80,
            local_port=18080,
            namespace="demo",
            context="sandbox",
            name="echo",
        )
        await manager.add(spec, start=True)
        await pilot.press("p")
        screen = pilot.app.screen
        assert isinstance(screen, ProfilesScreen)
        await wait_until(pilot, lambda: not screen.reading, what="the file read")
        screen.select_row("demo", "echoes")
        screen.refresh_counts()
        await settle(pilot)

    assert snap(snap_compare, make_app(manager), run_before, size)


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_quick_add_prompt(snap_compare: SnapCompare, size: tuple[int, int]) -> None:
    async def run_before(pilot: Pilot[Any]) -> None:
        await settle(pilot)
        await pilot.press("colon")
        await settle(pilot)
        box = pilot.app.screen.query_one("#quick-add-input", Input)
        box.insert_text_at_cursor("svc/echo 99999:80")
        await pilot.press("enter")  # the error shows above the line
        await settle(pilot)

    assert snap(snap_compare, make_app(), run_before, size)


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_bulk_screen(snap_compare: SnapCompare, size: tuple[int, int]) -> None:
    async def run_before(pilot: Pilot[Any]) -> None:
        await settle(pilot)
        await pilot.press("m", "down", "space")
        await settle(pilot)

    assert snap(snap_compare, make_app(FakeManager(mixed_snapshots())), run_before, size)
