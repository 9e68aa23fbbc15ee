"""The dashboard never says what is not so (issue 12): one test per wrong or misleading text,
each one a user would have read on screen.
"""

from __future__ import annotations

import asyncio
import os
import random
import re
import socket
import subprocess
import uuid
from collections.abc import Iterator
from datetime import UTC
from pathlib import Path
from typing import Any

import pytest
import yaml
from textual.pilot import Pilot
from textual.widgets import Input, OptionList, Static

from portfwd.engine.catalog import ResourceChoice
from portfwd.engine.model import ForwardSpec, ForwardState, LogEntry, LogLevel
from portfwd.tui.app import PortfwdApp
from portfwd.tui.run import describe_context
from portfwd.tui.screens.logs import LogScreen
from portfwd.tui.screens.picker import NewForwardScreen
from tests.tui.conftest import Harness, RecordingApp
from tests.tui.fakes import NOW, FakeCatalog, FakeManager, mixed_snapshots
from tests.tui.helpers import collapsed, screen_lines, screen_text, settle, wait_until

pytestmark = pytest.mark.timeout(90)

README = Path(__file__).resolve().parents[2] / "README.md"
ACTIVE = ForwardState.ACTIVE


def make_app(
    manager: FakeManager | None = None,
    catalog: FakeCatalog | None = None,
    *,
    context: str = "sandbox",
) -> RecordingApp:
    return RecordingApp(
        manager or FakeManager(mixed_snapshots()),
        catalog=catalog or FakeCatalog(),
        context=context,
        cluster="sandbox" if context else "",
        namespace="demo",
        clock=lambda: NOW,
        tz=UTC,
        open_url=lambda url: True,
    )


async def press(pilot: Pilot[Any], *keys: str) -> None:
    for key in keys:
        await pilot.press(key)
        await settle(pilot)


def status_line(app: PortfwdApp) -> str:
    return str(app.screen.query_one("#status", Static).render())


# -- y: what was done, not what was hoped ---------------------------------------------------


async def test_y_outside_tmux_says_it_sent_osc52_not_that_it_copied(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("TMUX", raising=False)
    monkeypatch.delenv("STY", raising=False)
    app = make_app()
    async with app.run_test(size=(160, 30)) as pilot:
        await settle(pilot)
        await press(pilot, "y")
        await wait_until(pilot, lambda: bool(app.toast_titles), what="the toast")
        command = (
            "kubectl --context sandbox -n demo port-forward svc/echo --address 127.0.0.1 8080:80"
        )
        assert app.clipboard == command and app.toasts[-1] == command
        title = app.toast_titles[-1]
        assert title.startswith("Sent to the terminal's clipboard (OSC 52)")
        assert "ignores it" in title and "Copied" not in title


@pytest.fixture
def tmux_server(tmp_path: Path) -> Iterator[dict[str, str]]:
    """A private tmux server with tmux's defaults (set-clipboard external); yields the
    environment a program running inside it would have."""
    name = f"portfwd-clip-{os.getpid()}-{uuid.uuid4().hex[:6]}"
    base = ["tmux", "-L", name, "-f", "/dev/null"]
    try:
        subprocess.run([*base, "new-session", "-d", "sleep 60"], check=True, timeout=20)
    except (OSError, subprocess.SubprocessError):
        pytest.skip("tmux cannot run here")
    try:
        path = subprocess.run(
            [*base, "display-message", "-p", "#{socket_path}"],
            check=True,
            capture_output=True,
            text=True,
            timeout=20,
        ).stdout.strip()
        yield {"TMUX": f"{path},0,0", "socket": name}
    finally:
        subprocess.run([*base, "kill-server"], capture_output=True, timeout=20)
        Path(path).unlink(missing_ok=True)


async def test_y_in_tmux_copies_into_its_paste_buffer_and_says_so(
    tmux_server: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TMUX", tmux_server["TMUX"])
    app = make_app()
    async with app.run_test(size=(160, 30)) as pilot:
        await settle(pilot)
        await press(pilot, "y")
        await wait_until(pilot, lambda: bool(app.toast_titles), what="the toast")
        command = (
            "kubectl --context sandbox -n demo port-forward svc/echo --address 127.0.0.1 8080:80"
        )
        assert app.toast_titles[-1].startswith("Copied to tmux's paste buffer (prefix ] pastes")
        shown = await asyncio.to_thread(
            subprocess.run,
            ["tmux", "-L", tmux_server["socket"], "show-buffer"],
            capture_output=True,
            text=True,
            timeout=20,
        )
        buffer = shown.stdout
        assert buffer == command


# -- o: https for a port that speaks it ----------------------------------------------------


async def test_o_opens_https_for_a_port_named_https(harness: Harness) -> None:
    app = harness.app()
    async with app.run_test(size=(160, 30)) as pilot:
        await settle(pilot)
        spec = ForwardSpec("svc/api", 443, namespace="demo", context="sandbox")
        fid = await app.engine.add(spec, start=True)
        await wait_until(pilot, lambda: app.engine.get(fid).state is ACTIVE, what="up")
        port = app.engine.get(fid).local_port  # what it bound (asked for 0)
        await settle(pilot)
        app.dashboard.select(fid)
        await press(pilot, "o")
        await wait_until(pilot, lambda: bool(harness.opened), what="the browser")
        assert harness.opened == [f"https://localhost:{port}"]


# -- the log view says whether it follows ---------------------------------------------------


async def test_the_log_view_says_whether_it_follows_and_counts_what_arrived() -> None:
    manager = FakeManager(mixed_snapshots())
    app = make_app(manager)
    async with app.run_test(size=(160, 30)) as pilot:
        await settle(pilot)
        await press(pilot, "l")
        assert isinstance(app.screen, LogScreen)

        def title() -> str:
            return str(app.screen.query_one("#log-title", Static).render())

        assert "● following (f pauses)" in title()
        await press(pilot, "f")
        assert "⏸ paused (f follows)" in title()
        manager.add_log("a", LogEntry(NOW, LogLevel.INFO, "Handling connection for 8080"))
        await wait_until(pilot, lambda: "1 new line below" in title(), what="the count")
        await press(pilot, "f")
        assert "● following" in title() and "new line" not in title()
        assert "Handling connection for 8080" in screen_text(app)


# -- the picker ------------------------------------------------------------------------------


async def test_the_pickers_count_follows_the_filter() -> None:
    app = make_app()
    async with app.run_test(size=(160, 30)) as pilot:
        await settle(pilot)
        await press(pilot, "n", "enter")  # the namespaces: default, demo, kube-system
        assert status_line(app) == "3 of 3 namespaces selectable"
        await press(pilot, "d", "e")
        assert status_line(app) == "2 of 3 namespaces match “de”"
        await press(pilot, "backspace", "backspace")
        assert status_line(app) == "3 of 3 namespaces selectable"


class PodCatalog(FakeCatalog):
    async def resources(self, context: str, namespace: str, kind: str) -> list[ResourceChoice]:
        return [
            ResourceChoice("crashy", "CrashLoopBackOff", "0/1", healthy=False),
            ResourceChoice("echo-5f7c9-abcde", "Running", "1/1"),
            ResourceChoice("pending", "Pending", "0/1", healthy=False, detail="phase Pending"),
        ]


async def test_the_pod_list_keeps_its_columns_apart() -> None:
    app = make_app(catalog=PodCatalog())
    async with app.run_test(size=(160, 30)) as pilot:
        await settle(pilot)
        await press(pilot, "n", "enter", "enter", "down", "enter")  # kind: pod
        lines = [line for line in screen_lines(app) if re.search(r"\b[01]/1\b", line)]
        assert len(lines) == 3, screen_text(app)
        assert "CrashLoopBackOff 0/1" not in "\n".join(lines)
        assert len({line.index("/1") for line in lines}) == 1  # READY lines up


async def test_tab_on_the_port_step_marks_and_moves_on() -> None:
    app = make_app()
    async with app.run_test(size=(160, 30)) as pilot:
        await settle(pilot)
        await press(pilot, "n", "enter", "enter", "enter", "enter")
        choices = app.screen.query_one("#choices", OptionList)
        assert choices.highlighted == 0
        await press(pilot, "tab")
        assert str(choices.get_option_at_index(0).prompt).startswith("[x]")
        assert choices.highlighted == 1


async def test_the_picker_listens_on_localhost_like_portfwd_forward(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from portfwd.tui import ports

    async def check(text: str, address: str, taken: object) -> ports.PortCheck:
        return ports.PortCheck(text.isdigit(), f"{address}:{text} is free")

    monkeypatch.setattr(ports, "check_port", check)
    manager = FakeManager()
    app = make_app(manager)
    async with app.run_test(size=(160, 30)) as pilot:
        await settle(pilot)
        await press(pilot, "n", "enter", "enter", "enter", "enter", "enter")
        screen = app.screen
        assert isinstance(screen, NewForwardScreen) and screen.step == "local"
        assert screen.query_one("#local-address", Input).value == "localhost"
        await wait_until(pilot, lambda: not screen.query_one("#start").disabled, what="ok")
        await press(pilot, "enter")
        await wait_until(pilot, lambda: bool(manager.forwards), what="added")
        assert manager.snapshot()[0].spec.addresses == ("localhost",)


async def test_an_address_that_is_not_one_is_refused_not_called_reachable() -> None:
    app = make_app()
    async with app.run_test(size=(160, 30)) as pilot:
        await settle(pilot)
        await press(pilot, "n", "enter", "enter", "enter", "enter", "enter")
        screen = app.screen
        screen.query_one("#local-address", Input).value = "bogus"
        await settle(pilot)
        text = screen_text(app)
        assert "✖ “bogus” is not an IP address or localhost" in text
        assert "reachable from other machines" not in text
        assert screen.query_one("#start").disabled


def _privileged_with_free_partner() -> int:
    rng = random.Random()
    for _ in range(200):
        port = rng.randrange(200, 1000)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port + 8000))
            except OSError:
                continue
            return port
    pytest.skip("no free port in 8200..9000")


async def test_a_privileged_remote_port_suggests_plus_8000_as_the_readme_says(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from portfwd.engine.catalog import PortChoice
    from portfwd.tui import ports

    monkeypatch.setattr(ports, "_is_root", lambda: False)
    monkeypatch.setattr(ports, "_unprivileged_start", lambda: 1024)
    remote = _privileged_with_free_partner()
    catalog = FakeCatalog()

    async def one_port(*args: object) -> list[PortChoice]:
        return [PortChoice(remote, "web", "TCP")]

    catalog.ports = one_port  # type: ignore[method-assign]
    app = make_app(catalog=catalog)
    async with app.run_test(size=(160, 30)) as pilot:
        await settle(pilot)
        await press(pilot, "n", "enter", "enter", "enter", "enter")  # one port: no port step
        box = app.screen.query_one(f"#local-{remote}", Input)
        assert box.value == str(remote + 8000)
    rule = collapsed(README.read_text())
    assert (
        "The local port defaults to the remote port when it is free and yours to bind "
        "(below 1024 only as root), else the next free one above it, counting from the "
        "remote port + 8000 for a port below 1024 (80 → 8080)" in rule
    )


# -- what the header and the start-up warnings say ----------------------------------------


def test_a_missing_kubeconfig_is_named_once(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    _, _, warning = describe_context(str(missing), None)
    assert not warning.startswith("kubeconfig: kubeconfig")
    assert warning.startswith(f"kubeconfig {missing} (from --kubeconfig) does not exist")


def test_no_kubeconfig_says_forwards_with_their_own_still_run(tmp_path: Path) -> None:
    env_home = tmp_path / "home"
    env_home.mkdir()
    missing = env_home / ".kube" / "config"
    _, _, warning = describe_context(str(missing), None, own_kubeconfigs=2)
    assert "2 saved forwards use their own kubeconfig and are not affected" in warning


async def test_the_header_names_the_contexts_forwards_run_in_without_a_default() -> None:
    app = make_app(context="")
    async with app.run_test(size=(160, 30)) as pilot:
        await settle(pilot)
        head = screen_lines(app)[0]
        assert "no default context · forwards in sandbox" in head, head


# -- the table and the detail line ------------------------------------------------------------


async def test_a_filter_that_matches_nothing_leaves_no_stale_detail() -> None:
    app = make_app()
    async with app.run_test(size=(160, 30)) as pilot:
        await settle(pilot)
        assert "svc/echo in demo" in screen_text(app)  # the selected forward's detail line
        await press(pilot, "slash", "z", "z", "z")
        text = screen_text(app)
        assert "No forward matches “zzz”" in text
        assert "svc/echo" not in text, text


# -- --no-restore then quit ----------------------------------------------------------------


async def test_no_restore_then_quit_keeps_what_the_user_skipped(harness: Harness) -> None:
    size = (160, 30)
    app = harness.app()
    async with app.run_test(size=size) as pilot:
        await settle(pilot)
        spec = ForwardSpec("svc/echo", 80, namespace="demo", context="sandbox")
        fid = await app.engine.add(spec, start=True)
        await wait_until(pilot, lambda: app.engine.get(fid).local_port != 0, what="bound")
        await press(pilot, "q")
        await wait_until(pilot, lambda: app.return_code == 0, what="exit")
    skipped = harness.app(restore=False)
    async with skipped.run_test(size=size) as pilot:
        await wait_until(pilot, lambda: skipped.restored, what="restored")
        await settle(pilot)
        assert skipped.engine.get(fid).state is ForwardState.STOPPED
        await press(pilot, "q")
        await wait_until(pilot, lambda: skipped.return_code == 0, what="exit")
    saved = yaml.safe_load(harness.state_path.read_text())["forwards"]
    assert [(f["id"], f["running"]) for f in saved] == [(fid, True)]
    again = harness.app()
    async with again.run_test(size=size) as pilot:
        await wait_until(
            pilot,
            lambda: again.restored and again.engine.get(fid).state is ACTIVE,
            what="restored running",
        )
        await press(pilot, "q")
        await wait_until(pilot, lambda: again.return_code == 0, what="exit")


async def test_after_no_restore_a_forward_the_user_stops_is_saved_stopped(
    harness: Harness,
) -> None:
    """Skipped is not frozen: once the user starts and stops it, the file says stopped."""
    size = (160, 30)
    app = harness.app()
    async with app.run_test(size=size) as pilot:
        await settle(pilot)
        spec = ForwardSpec("svc/echo", 80, namespace="demo")
        fid = await app.engine.add(spec, start=True)
        await wait_until(pilot, lambda: app.engine.get(fid).local_port != 0, what="bound")
        await press(pilot, "q")
        await wait_until(pilot, lambda: app.return_code == 0, what="exit")
    skipped = harness.app(restore=False)
    async with skipped.run_test(size=size) as pilot:
        await wait_until(pilot, lambda: skipped.restored, what="restored")
        await settle(pilot)
        skipped.dashboard.select(fid)
        engine = skipped.engine
        await press(pilot, "space")
        await wait_until(pilot, lambda: engine.get(fid).state is ACTIVE, what="up")
        await press(pilot, "space")
        await wait_until(pilot, lambda: engine.get(fid).state is ForwardState.STOPPED, what="down")
        await press(pilot, "q")
        await wait_until(pilot, lambda: skipped.return_code == 0, what="exit")
    saved = yaml.safe_load(harness.state_path.read_text())["forwards"]
    assert [(f["id"], f["running"]) for f in saved] == [(fid, False)]
