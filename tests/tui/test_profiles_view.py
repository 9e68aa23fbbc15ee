"""The profiles view (`p`) on the real engine and the sandbox: start a group and see it
active with bytes through it, stop it, save the dashboard as a profile (comments kept), add
the selected forward to a group, and a broken file that still lists the good profiles."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from textual.pilot import Pilot
from textual.widgets import Input, Static

from portfwd.engine.catalog import KubeCatalog
from portfwd.engine.manager import Manager
from portfwd.engine.model import ForwardState
from portfwd.sandbox.fleet import SandboxFleet
from portfwd.store.profiles import load_profiles
from portfwd.tui.screens.dashboard import DashboardScreen
from portfwd.tui.screens.profiles import NamePrompt, ProfilesScreen
from tests.support.ports import reserved_port
from tests.tui.conftest import Harness, RecordingApp
from tests.tui.helpers import settle, wait_until
from tests.tui.test_app import SIZE, connect_echo, echo_spec, press, type_text

pytestmark = pytest.mark.timeout(90)

COMMENT = "# the team's forwards: keep this line"


def write_profiles(config: Path, echo_port: int, web_port: int) -> Path:
    config.mkdir(parents=True, exist_ok=True)
    path = config / "profiles.yaml"
    path.write_text(
        f"""{COMMENT}
version: 1
profiles:
  demo:
    description: the demo services
    defaults:
      context: sandbox
      namespace: demo
      address: 127.0.0.1
    forwards:
      - name: echo
        target: svc/echo
        ports: ["{echo_port}:80"]
      - name: web
        target: svc/web
        ports: ["{web_port}:80"]
    groups:
      backend: [echo]
      all: [echo, web]
"""
    )
    path.chmod(0o600)
    return path


def write_file(path: Path, text: str) -> Path:
    path.write_text(text)
    path.chmod(0o600)
    return path


@pytest.fixture
def config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The harness's config dir (its state file is there), as PORTFWD_CONFIG_DIR."""
    path = tmp_path / "config"
    path.mkdir(exist_ok=True)
    monkeypatch.setenv("PORTFWD_CONFIG_DIR", str(path))
    return path


def problems_text(screen: ProfilesScreen) -> str:
    box = screen.query_one("#profiles-problems", Static)
    return str(box.render()) if box.display else ""


async def open_view(pilot: Pilot[Any]) -> ProfilesScreen:
    await press(pilot, "p")
    screen = pilot.app.screen
    assert isinstance(screen, ProfilesScreen)
    await wait_until(pilot, lambda: not screen.reading, what="the profiles file read")
    await settle(pilot)
    return screen


async def test_start_a_group_then_the_profile_then_stop(harness: Harness, config: Path) -> None:
    echo_port, web_port = reserved_port(), reserved_port()
    write_profiles(config, echo_port, web_port)
    app = harness.app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        screen = await open_view(pilot)
        assert screen.counts() == {"demo": "0/2", "demo / backend": "0/1", "demo / all": "0/2"}
        screen.select_row("demo", "backend")
        await press(pilot, "enter")

        def active(name: str) -> bool:
            return any(
                s.spec.name == name and s.state is ForwardState.ACTIVE
                for s in app.engine.snapshot()
            )

        await wait_until(pilot, lambda: active("echo"), what="echo active")
        await wait_until(
            pilot, lambda: screen.counts()["demo / backend"] == "1/1", what="backend 1/1"
        )
        assert screen.counts()["demo"] == "1/2"
        assert not any(s.spec.name == "web" for s in app.engine.snapshot())  # not in the group
        payload = b"profiles" * 200
        assert await connect_echo(echo_port, payload) == payload

        screen.select_row("demo")
        await press(pilot, "space")  # the whole profile: web is added, echo stays
        await wait_until(pilot, lambda: active("web"), what="web active")
        await wait_until(pilot, lambda: screen.counts()["demo"] == "2/2", what="demo 2/2")
        assert len(app.engine.snapshot()) == 2

        await press(pilot, "space")  # all active: stops them
        await wait_until(
            pilot,
            lambda: all(s.state is ForwardState.STOPPED for s in app.engine.snapshot()),
            what="all stopped",
        )
        await wait_until(pilot, lambda: screen.counts()["demo"] == "0/2", what="demo 0/2")
        await press(pilot, "space")  # present but stopped: started again
        await wait_until(pilot, lambda: active("echo") and active("web"), what="restarted")
        assert await connect_echo(echo_port, b"again") == b"again"

        await press(pilot, "escape")
        assert isinstance(app.screen, DashboardScreen)
        assert app.dashboard.table.row_count == 2


async def test_y_copies_the_groups_kubectl_commands(harness: Harness, config: Path) -> None:
    echo_port, web_port = reserved_port(), reserved_port()
    write_profiles(config, echo_port, web_port)
    app = harness.app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        screen = await open_view(pilot)
        screen.select_row("demo", "all")
        await press(pilot, "y")
        await wait_until(pilot, lambda: bool(app.clipboard), what="copied")
        assert app.clipboard.splitlines() == [
            "kubectl --context sandbox -n demo port-forward svc/echo"
            f" --address 127.0.0.1 {echo_port}:80",
            "kubectl --context sandbox -n demo port-forward svc/web"
            f" --address 127.0.0.1 {web_port}:80",
        ]
        assert app.engine.snapshot() == []  # copying starts nothing


def write_spaced_profile(config: Path, tmp_path: Path, sandbox_kubeconfig: Path) -> Path:
    """A profile whose kubeconfig path has a space (returned), one forward on `:80`."""
    spaced = tmp_path / "my kube"
    spaced.mkdir(mode=0o700)
    kubeconfig = spaced / "config"
    kubeconfig.write_text(sandbox_kubeconfig.read_text())
    kubeconfig.chmod(0o600)
    config.mkdir(parents=True, exist_ok=True)
    path = config / "profiles.yaml"
    path.write_text(
        f"""version: 1
profiles:
  demo:
    defaults:
      {{context: sandbox, namespace: demo, address: 127.0.0.1, kubeconfig: "{kubeconfig}"}}
    forwards:
      - {{name: echo, target: svc/echo, ports: [":80"]}}
"""
    )
    path.chmod(0o600)
    return kubeconfig


async def test_y_on_the_dashboard_and_in_the_profiles_view_copy_one_command(
    harness: Harness, config: Path, tmp_path: Path
) -> None:
    """One forward, one command: the dashboard's `y` once copied `--kubeconfig /a b/config`
    unquoted and without `--address`, the profiles view's `:80` where the forward had bound
    a port."""
    kubeconfig = write_spaced_profile(config, tmp_path, harness.sandbox.kubeconfig_path)
    app = harness.app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        screen = await open_view(pilot)
        screen.select_row("demo")
        await press(pilot, "enter")
        await wait_until(
            pilot,
            lambda: [s.state for s in app.engine.snapshot()] == [ForwardState.ACTIVE],
            what="echo active",
        )
        await press(pilot, "y")
        await wait_until(pilot, lambda: bool(app.clipboard), what="copied")
        from_profiles = app.clipboard
        app.copy_to_clipboard("")
        await press(pilot, "escape")
        (snap,) = app.engine.snapshot()
        app.dashboard.select(snap.id)
        await press(pilot, "y")
        await wait_until(pilot, lambda: bool(app.clipboard), what="copied")
        assert (
            app.clipboard
            == from_profiles
            == (
                f"kubectl --kubeconfig '{kubeconfig}' --context sandbox -n demo port-forward"
                f" svc/echo --address 127.0.0.1 {snap.local_port}:80"
            )
        )


async def test_save_the_dashboard_as_a_profile_keeps_comments(
    harness: Harness, config: Path
) -> None:
    path = write_profiles(config, reserved_port(), reserved_port())
    app = harness.app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        port = reserved_port()
        await app.engine.add(echo_spec(port), start=True)
        await wait_until(pilot, lambda: app.dashboard.table.row_count == 1)
        screen = await open_view(pilot)
        await press(pilot, "s")
        prompt = app.screen
        assert isinstance(prompt, NamePrompt)
        prompt.query_one("#profile-name", Input).value = ""
        await type_text(pilot, "morning")
        await press(pilot, "enter")
        await wait_until(pilot, lambda: "morning" in screen.counts(), what="the new profile")
        await settle(pilot)
        # the running forward it was saved from counts (it has no name, the same target)
        await wait_until(pilot, lambda: screen.counts()["morning"] == "1/1", what="1/1")
        screen.select_row("morning")
        await press(pilot, "space")  # all active: stops it, adds nothing
        await wait_until(
            pilot,
            lambda: [s.state for s in app.engine.snapshot()] == [ForwardState.STOPPED],
            what="stopped",
        )

    text = path.read_text()
    assert text.startswith(COMMENT + "\n")
    loaded = load_profiles(path)
    assert not loaded.problems
    assert list(loaded.profiles) == ["demo", "morning"]
    (fwd,) = loaded.profiles["morning"].forwards
    assert (fwd.target, fwd.ports, fwd.context, fwd.namespace) == (
        "svc/echo",
        (f"{port}:80",),
        "sandbox",
        "demo",
    )
    assert oct(path.stat().st_mode & 0o777) == oct(0o600)


async def test_add_the_selected_forward_to_a_group(harness: Harness, config: Path) -> None:
    path = write_profiles(config, reserved_port(), reserved_port())
    app = harness.app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        port = reserved_port()
        await app.engine.add(echo_spec(port, target="svc/web"), start=True)
        await wait_until(pilot, lambda: app.dashboard.table.row_count == 1)
        screen = await open_view(pilot)
        screen.select_row("demo", "backend")
        await press(pilot, "a")
        await wait_until(
            pilot, lambda: screen.counts().get("demo / backend") == "1/2", what="backend 1/2"
        )
    profile = load_profiles(path).profiles["demo"]
    assert [f.name for f in profile.forwards] == ["echo", "web", "web-80"]
    assert profile.groups["backend"] == ("echo", "web-80")
    assert path.read_text().startswith(COMMENT + "\n")


async def test_broken_file_shows_problems_and_the_good_profiles(
    harness: Harness, config: Path
) -> None:
    path = write_profiles(config, reserved_port(), reserved_port())
    path.write_text(
        path.read_text()
        + """  broken:
    forwards:
      - name: db
        target: svc/db
        namspace: demo
        ports: ["5432"]
"""
    )
    app = harness.app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        screen = await open_view(pilot)
        text = problems_text(screen)
        assert 'profiles.yaml:24:9: unknown key "namspace"' in text, text
        assert "left out until fixed: broken" in text
        assert set(screen.counts()) == {"demo", "demo / backend", "demo / all"}


async def test_unparsable_file_is_shown_not_overwritten(harness: Harness, config: Path) -> None:
    path = write_file(config / "profiles.yaml", "profiles:\n  demo: [unclosed\n")
    app = harness.app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await app.engine.add(echo_spec(), start=False)
        screen = await open_view(pilot)
        assert "profiles.yaml:" in problems_text(screen)
        assert screen.counts() == {}
        await press(pilot, "s")
        await type_text(pilot, "x")
        await press(pilot, "enter")
        await settle(pilot)
        assert any("was not changed" in t for t in app.toasts), app.toasts
    assert path.read_text() == "profiles:\n  demo: [unclosed\n"


TWO_CLUSTERS = """version: 1
profiles:
  both:
    defaults:
      namespace: demo
      address: 127.0.0.1
    forwards:
      - name: web-a
        target: svc/web
        ports: ["{a}:80"]
        context: sandbox
      - name: web-b
        target: svc/web
        ports: ["{b}:80"]
        context: sandbox-2
    groups:
      second: [web-b]
"""


async def http_get(port: int, path: str) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        response = await asyncio.wait_for(reader.read(), 20)
    finally:
        writer.close()
    head, _, body = response.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK"), head
    return body


async def test_a_profile_of_two_clusters_starts_in_one_window(
    sandbox_pair: SandboxFleet, config: Path
) -> None:
    a, b = reserved_port(), reserved_port()
    write_file(config / "profiles.yaml", TWO_CLUSTERS.format(a=a, b=b))
    manager = Manager(kubeconfig=str(sandbox_pair.kubeconfig_path))
    try:
        app = RecordingApp(
            manager,
            catalog=KubeCatalog(manager.clients, kubeconfig=str(sandbox_pair.kubeconfig_path)),
            context="sandbox",
            cluster="sandbox",
            namespace="demo",
        )
        async with app.run_test(size=SIZE) as pilot:
            await settle(pilot)
            screen = await open_view(pilot)
            screen.select_row("both", "second")
            await press(pilot, "enter")  # the group: only the second cluster's
            await wait_until(pilot, lambda: screen.counts()["both"] == "1/2", what="1/2")
            assert await http_get(b, "/cluster") == b"sandbox-2\n"
            screen.select_row("both")
            await press(pilot, "enter")  # the rest of the profile
            await wait_until(pilot, lambda: screen.counts()["both"] == "2/2", what="2/2")
            assert await http_get(a, "/cluster") == b"sandbox\n"
            assert await http_get(b, "/cluster") == b"sandbox-2\n"
            assert sorted(s.context for s in manager.snapshot()) == ["sandbox", "sandbox-2"]
    finally:
        await manager.shutdown()


async def test_the_dashboard_shows_each_forwards_profile_and_groups(
    harness: Harness, config: Path
) -> None:
    """Issue 10: forwards grouped on the dashboard (a Group column, sortable, filterable);
    a forward of no profile has none, and without a profile the column is not shown."""
    from tests.tui.test_app import row

    echo_port, web_port = reserved_port(), reserved_port()
    app = harness.app()
    async with app.run_test(size=(200, 40)) as pilot:
        await settle(pilot)
        loose = await app.engine.add(echo_spec(), start=True)
        await wait_until(pilot, lambda: loose in app.dashboard.table.snapshots, what="row")
        assert "group" not in row(app, loose), "no profiles: no Group column"
        write_profiles(config, echo_port, web_port)
        screen = await open_view(pilot)
        screen.select_row("demo", "all")
        await press(pilot, "enter")
        await wait_until(pilot, lambda: len(app.engine.snapshot()) == 3, what="the group")
        await press(pilot, "escape")
        by_name = {s.spec.name: s.id for s in app.engine.snapshot()}
        await wait_until(
            pilot,
            lambda: row(app, by_name["echo"]).get("group") == "demo/backend,all",
            what="the Group column",
        )
        assert row(app, by_name["web"])["group"] == "demo/all"
        assert row(app, loose)["group"] == ""
        await press(pilot, "slash")
        await type_text(pilot, "backend")
        await settle(pilot)
        assert app.dashboard.table.row_keys == (by_name["echo"],)
