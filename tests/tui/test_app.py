"""Pilot tests of every flow, on the real engine and the sandbox cluster (real sockets)."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from typing import Any

import pytest
import yaml
from textual.pilot import Pilot
from textual.widgets import Button, Input, OptionList, Static

from portfwd.engine.model import ForwardSpec, ForwardState, LogLevel
from portfwd.tui.app import PortfwdApp
from portfwd.tui.screens.dialogs import ConfirmScreen, EditScreen, HelpScreen
from portfwd.tui.screens.logs import LogScreen
from portfwd.tui.screens.picker import NewForwardScreen
from portfwd.tui.widgets.local_form import LocalPortForm
from tests.support.ports import reserved_port
from tests.tui.conftest import Harness
from tests.tui.helpers import collapsed, screen_text, settle, wait_until

pytestmark = pytest.mark.timeout(90)

SIZE = (160, 40)


def echo_spec(local: int = 0, target: str = "svc/echo", remote: int | str = 80) -> ForwardSpec:
    return ForwardSpec(
        target=target, remote_port=remote, local_port=local, namespace="demo", context="sandbox"
    )


def row(app: PortfwdApp, fid: str) -> dict[str, str]:
    """The row as shown: column key -> text (cut to its column)."""
    return {k: t.plain for k, t in app.dashboard.table.shown_cells(fid).items()}


def cell(app: PortfwdApp, fid: str, key: str) -> str:
    """A cell's whole text, shown or not."""
    return app.dashboard.table.cell_text(fid, key)


def status(app: PortfwdApp) -> str:
    return str(app.screen.query_one("#status", Static).render())


def options(app: PortfwdApp) -> list[str]:
    choices = app.screen.query_one("#choices", OptionList)
    return [str(choices.get_option_at_index(i).prompt) for i in range(choices.option_count)]


async def type_text(pilot: Pilot[Any], text: str) -> None:
    await pilot.press(*list(text))
    await settle(pilot)


async def press(pilot: Pilot[Any], *keys: str) -> None:
    for key in keys:
        await pilot.press(key)
        await settle(pilot)


async def open_picker_to_ports(pilot: Pilot[Any], resource: str) -> NewForwardScreen:
    """n, then sandbox / demo / service / <resource>: the port step."""
    await press(pilot, "n")
    screen = pilot.app.screen
    assert isinstance(screen, NewForwardScreen)
    await press(pilot, "enter")  # context: the current one is highlighted
    await press(pilot, "enter")  # namespace: the context's (demo) is highlighted
    await press(pilot, "enter")  # kind: service is first
    await type_text(pilot, resource)
    await press(pilot, "enter")
    if screen.skipped_port_step:  # one TCP port: straight to the local step; esc shows them
        await press(pilot, "escape")
    assert screen.step == "port"
    return screen


async def connect_echo(port: int, payload: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(payload)
        await writer.drain()
        return await asyncio.wait_for(reader.readexactly(len(payload)), 20)
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


def refused(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) != 0


# -- dashboard ------------------------------------------------------------------------------


async def test_empty_dashboard_tells_how_to_add(harness: Harness) -> None:
    app = harness.app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        empty = app.dashboard.query_one("#empty", Static)
        assert empty.display and "Press  n  to add one" in str(empty.render())
        assert app.sub_title == "context sandbox · cluster sandbox"


async def test_picker_adds_named_targetport_forward_and_bytes_show(harness: Harness) -> None:
    app = harness.app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        screen = await open_picker_to_ports(pilot, "echo")
        assert options(app) == ["[ ]    80/TCP   tcp          → targetPort echo"]
        await press(pilot, "enter")
        assert screen.step == "local"
        port = reserved_port()
        box = screen.query_one("#local-80", Input)
        box.value = str(port)
        await settle(pilot)
        assert str(screen.query_one("#check-80", Static).render()) == f"✓ localhost:{port} is free"
        await press(pilot, "enter")
        assert app.screen is app.dashboard
        await wait_until(pilot, lambda: bool(app.engine.snapshot()), what="forward added")
        snap = app.engine.snapshot()[0]
        assert snap.spec == ForwardSpec(
            target="svc/echo",
            remote_port=80,
            local_port=port,
            namespace="demo",
            context="sandbox",
            addresses=("localhost",),  # the picker's default is the CLI's
        )
        await wait_until(pilot, lambda: row(app, snap.id)["status"] == "● active", what="active")
        cells = row(app, snap.id)
        assert [cells[k] for k in ("target", "local", "remote")] == [
            "svc/echo",
            f"localhost:{port}",
            "80 → 9000 (echo)",
        ]
        assert cells["pod"].startswith("echo-")  # the pod the service currently uses
        payload = b"portfwd" * 300  # 2100 bytes
        assert await connect_echo(port, payload) == payload
        await wait_until(
            pilot,
            lambda: (
                [row(app, snap.id)[k] for k in ("bytes_in", "bytes_out")] == ["2.1 KiB", "2.1 KiB"]
            ),
            what="byte counts",
        )


async def test_picker_shows_resources_with_status_and_udp_disabled(harness: Harness) -> None:
    app = harness.app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await press(pilot, "n", "enter", "enter", "enter")
        listed = options(app)
        web = next(o for o in listed if o.startswith("web "))
        assert "ClusterIP" in web and "2/3 ready" in web  # one web pod is not Ready
        crashy = next(o for o in listed if o.startswith("crashy "))
        assert "0/1 ready" in crashy
        # A Service with UDP ports only cannot be chosen, and says why, at this step.
        assert status(app) == "5 of 6 services selectable"
        await type_text(pilot, "dns")
        choices = app.screen.query_one("#choices", OptionList)
        udp = choices.get_option_at_index(0)
        assert udp.disabled and "UDP ports only" in str(udp.prompt), str(udp.prompt)
        await press(pilot, "enter")  # a disabled resource cannot be chosen
        assert isinstance(app.screen, NewForwardScreen) and app.screen.step == "resource"


async def test_picker_skips_the_port_step_for_one_tcp_port(harness: Harness) -> None:
    """Issue 18 §6: as the browse view does; esc then shows the port list."""
    app = harness.app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await press(pilot, "n", "enter", "enter", "enter")
        screen = app.screen
        assert isinstance(screen, NewForwardScreen)
        await type_text(pilot, "echo")
        await press(pilot, "enter")
        assert screen.step == "local" and [p.port for p in screen.ports] == [80]
        assert screen.query_one("#local-80", Input) is not None
        await press(pilot, "escape")
        assert screen.step == "port" and options(app)[0].startswith("[ ]    80/TCP")
        await press(pilot, "escape")
        assert screen.step == "resource"
        await type_text(pilot, "api")  # two ports: the port step asks
        await press(pilot, "enter")
        assert screen.step == "port"


async def test_picker_fuzzy_filter_and_back_with_escape(harness: Harness) -> None:
    app = harness.app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await press(pilot, "n", "enter", "enter")
        await press(pilot, "d", "p", "l")  # fuzzy: d..p..l matches "deployment" only
        assert [o.split()[0] for o in options(app)] == ["deployment"]
        await press(pilot, "enter")
        screen = app.screen
        assert isinstance(screen, NewForwardScreen) and screen.kind == "deployment"
        assert any(o.startswith("echo ") and "2/2" in o for o in options(app))
        await press(pilot, "escape")
        assert screen.step == "kind"
        await press(pilot, "escape", "escape", "escape")
        assert app.screen is app.dashboard


async def test_forbidden_namespaces_fall_back_to_typing(harness: Harness) -> None:
    app = harness.app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await press(pilot, "n")
        await type_text(pilot, "limited")
        await press(pilot, "enter")
        screen = app.screen
        assert isinstance(screen, NewForwardScreen) and screen.context == "sandbox-limited"
        assert screen.state == "forbidden"
        assert "You may not list namespaces in context sandbox-limited" in status(app)
        assert "Type the namespace and press enter" in status(app)
        await type_text(pilot, "demo")
        assert options(app) == ["demo  (context default)"]  # typed = the suggestion
        await press(pilot, "enter")
        assert screen.namespace == "demo" and screen.step == "kind"
        await press(pilot, "enter")  # services in demo are allowed for this user
        assert screen.state == "ready" and any(o.startswith("echo ") for o in options(app))


async def test_list_error_is_shown_and_retried(harness: Harness) -> None:
    app = harness.app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await press(pilot, "n")
        await type_text(pilot, "nobody")
        await press(pilot, "enter")
        screen = app.screen
        assert isinstance(screen, NewForwardScreen) and screen.state == "forbidden"
        await type_text(pilot, "demo")
        await press(pilot, "enter", "enter")  # kind: service
        assert screen.state == "error"
        text = status(app)
        assert text.startswith('✖ Cannot load services: user "nobody" may not list services')
        assert "ctrl+r retries" in text and options(app) == []
        await press(pilot, "ctrl+r")
        assert screen.state == "error"  # still forbidden, shown again


async def test_loading_state_is_visible_until_the_list_arrives(harness: Harness) -> None:
    from tests.tui.fakes import FakeCatalog

    catalog = FakeCatalog()
    catalog.gate = asyncio.Event()
    app = harness.app(catalog=catalog)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("n")
        screen = app.screen
        await wait_until(pilot, lambda: screen.state == "loading", what="loading")
        assert status(app) == "⏳ Loading contexts…" and options(app) == []
        await pilot.press("enter")  # nothing to choose yet: stays
        await pilot.pause()
        assert screen.step == "context"
        catalog.gate.set()
        await wait_until(pilot, lambda: screen.state == "ready", what="loaded")
        assert status(app) == "3 of 3 contexts selectable"
        assert options(app)[0].startswith("sandbox")


async def test_local_port_validation(harness: Harness, monkeypatch: pytest.MonkeyPatch) -> None:
    app = harness.app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        other = await app.engine.add(echo_spec(target="svc/web"), start=True)
        other_port = app.engine.get(other).local_port
        screen = await open_picker_to_ports(pilot, "echo")
        await press(pilot, "enter")
        box = screen.query_one("#local-80", Input)
        check = screen.query_one("#check-80", Static)
        start = screen.query_one("#start", Button)

        async def verdict(value: str) -> str:
            box.value = value
            await settle(pilot)
            return str(check.render())

        assert await verdict("0") == "✖ 0 is out of range: use 1-65535"
        assert await verdict("70000") == "✖ 70000 is out of range: use 1-65535"
        assert await verdict("http") == "✖ “http” is not a port number (1-65535)"
        assert start.disabled
        assert await verdict(str(other_port)) == (
            f"✖ {other_port} is in use by forward svc/web {other_port}→80"
        )
        with socket.socket() as holder:
            holder.bind(("127.0.0.1", 0))
            holder.listen()
            held = holder.getsockname()[1]
            assert await verdict(str(held)) == f"✖ {held} is in use by another program"
        monkeypatch.setattr("portfwd.tui.ports._is_root", lambda: False)
        monkeypatch.setattr("portfwd.tui.ports._unprivileged_start", lambda: 1024)
        assert await verdict("80") == "✖ 80 is privileged (<1024) here: pick 1024 or above"
        await press(pilot, "enter")  # refused while invalid
        assert app.screen is screen
        free = reserved_port()
        assert await verdict(str(free)) == f"✓ localhost:{free} is free"
        assert not start.disabled


async def test_local_port_defaults_to_remote_or_next_free(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = harness.app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        with socket.socket() as holder:
            holder.bind(("127.0.0.1", 0))
            holder.listen()
            held = holder.getsockname()[1]
            # Pretend the service port is the one already in use: the next free one is offered.
            from portfwd.engine.catalog import PortChoice

            async def ports(*args: Any) -> list[PortChoice]:
                return [PortChoice(held, "tcp", "TCP")]

            monkeypatch.setattr(app.catalog, "ports", ports)
            screen = await open_picker_to_ports(pilot, "echo")
            await press(pilot, "enter")
            box = screen.query_one(f"#local-{held}", Input)
            assert int(box.value) > held


# -- actions on the selected forward -------------------------------------------------------


async def add_active(app: PortfwdApp, pilot: Pilot[Any], spec: ForwardSpec) -> str:
    fid = await app.engine.add(spec, start=True)
    await wait_until(pilot, lambda: row(app, fid)["status"] == "● active", what=f"{fid} active")
    app.dashboard.select(fid)
    await settle(pilot)
    return fid


async def test_space_stops_and_starts_r_restarts(harness: Harness) -> None:
    app = harness.app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        port = reserved_port()
        fid = await add_active(app, pilot, echo_spec(port))
        await press(pilot, "space")
        await wait_until(pilot, lambda: row(app, fid)["status"] == "■ stopped", what="stopped")
        assert refused(port)
        await press(pilot, "space")
        await wait_until(pilot, lambda: row(app, fid)["status"] == "● active", what="active again")
        assert await connect_echo(port, b"x") == b"x"
        await press(pilot, "r")
        await wait_until(
            pilot,
            lambda: (
                app.engine.get(fid).state is ForwardState.ACTIVE
                and any("restarting" in e.message for e in app.engine.logs(fid))
            ),
            what="restarted",
        )
        assert await connect_echo(port, b"y") == b"y"


async def test_delete_asks_when_active(harness: Harness) -> None:
    app = harness.app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        fid = await add_active(app, pilot, echo_spec())
        port = app.engine.get(fid).local_port  # what it bound (asked for 0)
        await press(pilot, "d")
        assert isinstance(app.screen, ConfirmScreen)
        question = str(app.screen.query_one("#question", Static).render())
        assert question.startswith(f"Delete the active forward svc/echo {port}→80?")
        await press(pilot, "n")
        assert app.screen is app.dashboard and fid in app.dashboard.table.snapshots
        await press(pilot, "d")
        await press(pilot, "y")
        await wait_until(pilot, lambda: not app.engine.snapshot(), what="removed")
        await wait_until(pilot, lambda: app.dashboard.table.row_count == 0, what="row gone")
        assert refused(port)
        # A stopped forward goes without a question.
        fid2 = await app.engine.add(echo_spec(), start=False)
        await wait_until(pilot, lambda: app.dashboard.table.row_count == 1, what="row")
        await press(pilot, "d")
        assert not isinstance(app.screen, ConfirmScreen)
        await wait_until(pilot, lambda: fid2 not in app.dashboard.table.snapshots, what="gone")


async def test_copy_kubectl_command(harness: Harness) -> None:
    app = harness.app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        fid = await add_active(app, pilot, echo_spec())
        port = app.engine.get(fid).local_port  # what it bound (asked for 0)
        await press(pilot, "y")
        # The forward listens on 127.0.0.1 only: kubectl's default (localhost) is both.
        expected = (
            f"kubectl --context sandbox -n demo port-forward svc/echo --address 127.0.0.1 {port}:80"
        )
        assert app.clipboard == expected
        assert expected in app.toasts


async def test_edit_local_port_rebinds(harness: Harness) -> None:
    app = harness.app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        old = reserved_port()
        fid = await add_active(app, pilot, echo_spec(old))
        await press(pilot, "e")
        assert isinstance(app.screen, EditScreen)
        new = reserved_port()
        box = app.screen.query_one("#edit-port", Input)
        box.value = "99999"
        await settle(pilot)
        assert "out of range" in str(app.screen.query_one("#edit-port-check", Static).render())
        box.value = str(new)
        await settle(pilot)
        await press(pilot, "enter")
        assert app.screen is app.dashboard
        await wait_until(
            pilot,
            lambda: (
                row(app, fid)["local"] == f"127.0.0.1:{new}"
                and row(app, fid)["status"] == "● active"
            ),
            what="rebound",
        )
        assert await connect_echo(new, b"moved") == b"moved"
        assert refused(old)


async def test_open_in_browser(harness: Harness) -> None:
    app = harness.app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        fid = await add_active(app, pilot, echo_spec(target="svc/web"))
        port = app.engine.get(fid).local_port  # what it bound (asked for 0)
        await press(pilot, "o")
        await wait_until(pilot, lambda: bool(harness.opened), what="browser opened")
        assert harness.opened == [f"http://localhost:{port}"]


async def test_logs_show_resolution_and_live_lines(harness: Harness) -> None:
    app = harness.app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        fid = await add_active(app, pilot, echo_spec())
        port = app.engine.get(fid).local_port  # what it bound (asked for 0)
        await press(pilot, "l")
        screen = app.screen
        assert isinstance(screen, LogScreen) and screen.forward_id == fid
        await wait_until(pilot, lambda: screen.lines_shown >= 3, what="history")
        text = "\n".join(line.text for line in screen.query_one("#log").lines)
        assert "-> targetPort echo -> pod echo-" in text
        assert f"Forwarding from 127.0.0.1:{port} -> 9000" in text
        shown = screen.lines_shown
        assert await connect_echo(port, b"ping") == b"ping"
        await wait_until(pilot, lambda: screen.lines_shown > shown, what="live line")
        text = "\n".join(line.text for line in screen.query_one("#log").lines)
        assert f"Handling connection for {port}" in text
        await press(pilot, "escape")
        assert app.screen is app.dashboard
        await press(pilot, "L")
        assert isinstance(app.screen, LogScreen) and app.screen.forward_id is None
        all_text = "\n".join(line.text for line in app.screen.query_one("#log").lines)
        assert f"svc/echo {port}→80" in all_text  # lines are prefixed with their forward


async def test_help_and_command_palette(harness: Harness) -> None:
    app = harness.app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        fid = await add_active(app, pilot, echo_spec())
        port = app.engine.get(fid).local_port  # what it bound (asked for 0)
        await press(pilot, "question_mark")
        assert isinstance(app.screen, HelpScreen)
        help_text = collapsed(screen_text(app))
        for key in ("space", "restart", "delete", "edit", "copy", "open", "filter", "sort"):
            assert key in help_text
        await press(pilot, "escape")
        titles = [c.title for c in app.get_system_commands(app.screen)]
        for title in (
            "New forward",
            "Start / stop forward",
            "Restart forward",
            "Delete forward",
            "Edit forward",
            "Forward logs",
            "App log",
            "Copy kubectl command",
            "Open in browser",
            "Filter forwards",
            "Sort by next column",
            "Reverse sort",
            "Help",
            "Quit",
            "Switch context",
            "Switch namespace",
        ):
            assert title in titles
        # Textual's own entries that do nothing useful here are hidden (issue 18 §6).
        assert not {"Keys", "Maximize", "Minimize", "Screenshot"} & set(titles)
        assert titles.count("Quit") == 1  # ours, which saves the session first
        await press(pilot, "l")
        log_titles = [c.title for c in app.get_system_commands(app.screen)]
        assert {"Follow log", "Clear log view", "Quit"} <= set(log_titles)
        assert "Delete forward" not in log_titles  # forward actions live on the dashboard
        await press(pilot, "escape")
        await press(pilot, "ctrl+p")
        await type_text(pilot, "copy kubectl")
        await press(pilot, "enter")
        await wait_until(pilot, lambda: app.clipboard.endswith(f"{port}:80"), what="copied")


async def test_filter_and_sort_with_200_forwards(harness: Harness) -> None:
    app = harness.app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        for n in range(200):
            await app.engine.add(echo_spec(20000 + n, target=f"svc/s{n:03d}"), start=False)
        table = app.dashboard.table
        await wait_until(pilot, lambda: table.row_count == 200, what="200 rows")
        await press(pilot, "slash")
        await type_text(pilot, "s19")
        assert [row(app, fid)["target"] for fid in table.visible_ids()] == [
            f"svc/s19{n}" for n in range(10)
        ]
        await press(pilot, "enter")  # back to the table, filter kept
        assert table.has_focus and table.row_count == 10
        await press(pilot, "escape")
        assert table.row_count == 200
        table.sort_by("local", reverse=True)
        await settle(pilot)
        assert row(app, table.visible_ids()[0])["target"] == "svc/s199"
        await press(pilot, "end")
        assert app.focused is table, app.focused
        assert table.cursor_row == 199


# -- session: saved on every change, restored on start, quit is fast and clean --------------


async def test_quit_with_20_active_forwards_saves_then_closes_everything(
    harness: Harness,
) -> None:
    app = harness.app()
    ports: list[int] = []
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        ids = await asyncio.gather(*(app.engine.add(echo_spec(0)) for _ in range(20)))
        await wait_until(
            pilot,
            lambda: all(app.engine.get(f).state is ForwardState.ACTIVE for f in ids),
            what="20 active",
        )
        ports = [app.engine.get(f).local_port for f in ids]
        readers = [await asyncio.open_connection("127.0.0.1", p) for p in ports[:5]]
        await press(pilot, "q")
        await wait_until(pilot, lambda: app.return_code == 0, what="app exit")
        for _, writer in readers:
            writer.close()
    assert all(refused(p) for p in ports)
    saved = yaml.safe_load(harness.state_path.read_text())["forwards"]
    assert len(saved) == 20 and all(f["running"] for f in saved)
    assert sorted(f["local_port"] for f in saved) == sorted(ports)


async def test_session_restored_running_stopped_and_missing(harness: Harness) -> None:
    app = harness.app()
    port = reserved_port()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        running = await add_active(app, pilot, echo_spec(port))
        stopped = await app.engine.add(echo_spec(target="svc/web"), start=False)
        gone = await add_active(app, pilot, echo_spec(target="svc/api", remote=443))
        await press(pilot, "q")
        await wait_until(pilot, lambda: app.return_code == 0, what="exit")
    # The service of the third one disappears while portfwd is not running.
    harness.sandbox.store.delete("services", "demo", "api")
    app2 = harness.app()
    async with app2.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: app2.restored, what="restored")
        await settle(pilot)
        assert [s.id for s in app2.engine.snapshot()] == [running, stopped, gone]
        assert app2.engine.get(running).state is ForwardState.ACTIVE
        assert await connect_echo(port, b"back") == b"back"
        assert row(app2, stopped)["status"] == "■ stopped"
        assert cell(app2, stopped, "error") == "stopped in the last session"
        assert row(app2, gone)["status"] == "✖ error" and "api" in cell(app2, gone, "error")
        await press(pilot, "q")
        await wait_until(pilot, lambda: app2.return_code == 0, what="exit")


async def test_no_restore_keeps_saved_forwards_stopped(harness: Harness) -> None:
    app = harness.app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        fid = await add_active(app, pilot, echo_spec())
        await press(pilot, "q")
        await wait_until(pilot, lambda: app.return_code == 0, what="exit")
    app2 = harness.app(restore=False)
    async with app2.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: app2.restored, what="restored")
        await settle(pilot)
        assert row(app2, fid)["status"] == "■ stopped"
        assert cell(app2, fid, "error") == "not restarted (--no-restore)"
        await press(pilot, "q")
        await wait_until(pilot, lambda: app2.return_code == 0, what="exit")
    # Quitting did not rewrite what --no-restore skipped: the next normal start restores it.
    saved = yaml.safe_load(harness.state_path.read_text())["forwards"]
    assert saved[0]["running"] is True
    app3 = harness.app()
    async with app3.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: app3.restored, what="restored")
        await wait_until(pilot, lambda: row(app3, fid)["status"] == "● active", what="active again")
        await press(pilot, "q")
        await wait_until(pilot, lambda: app3.return_code == 0, what="exit")


async def test_a_second_dashboard_on_the_session_says_where_its_rows_run(
    harness: Harness,
) -> None:
    """Issue 18: the second window started none of the saved running forwards because the
    first one runs them; its rows said `not restarted (--no-restore)`, a flag nobody gave."""
    first = harness.app()
    async with first.run_test(size=SIZE) as p1:
        await settle(p1)
        fid = await add_active(first, p1, echo_spec())
        await press(p1, "q")
        await wait_until(p1, lambda: first.return_code == 0, what="exit")
    holder = harness.app()
    async with holder.run_test(size=SIZE) as p1:
        await wait_until(p1, lambda: holder.restored, what="the first window restored")
        second = harness.app()
        async with second.run_test(size=SIZE) as p2:
            await wait_until(p2, lambda: second.restored, what="the second window restored")
            await settle(p2)
            assert row(second, fid)["status"] == "■ stopped"
            note = cell(second, fid, "error")
            assert "--no-restore" not in note
            assert note.startswith("runs in another portfwd (pid "), note
            await press(p2, "q")
            await wait_until(p2, lambda: second.return_code == 0, what="second exits")
        await press(p1, "q")
        await wait_until(p1, lambda: holder.return_code == 0, what="first exits")


async def test_a_skipped_forward_the_user_starts_and_stops_is_saved_stopped(
    harness: Harness,
) -> None:
    app = harness.app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        fid = await add_active(app, pilot, echo_spec())
        await press(pilot, "q")
        await wait_until(pilot, lambda: app.return_code == 0, what="exit")
    app2 = harness.app(restore=False)
    async with app2.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: app2.restored, what="restored")
        await app2.engine.start(fid)
        await app2.engine.stop(fid)  # touched by the user: what it is now is what counts
        await press(pilot, "q")
        await wait_until(pilot, lambda: app2.return_code == 0, what="exit")
    saved = yaml.safe_load(harness.state_path.read_text())["forwards"]
    assert saved[0]["running"] is False


async def test_corrupt_state_file_is_moved_aside_with_a_warning(harness: Harness) -> None:
    harness.state_path.parent.mkdir(parents=True)
    harness.state_path.write_text("version: 1\nforwards: {oops\n")
    app = harness.app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        assert any("is unusable (not valid YAML); moved it to" in m for m in app.toasts)
        backups = list(harness.state_path.parent.glob("state.yaml.bak-*"))
        assert len(backups) == 1 and backups[0].read_text() == "version: 1\nforwards: {oops\n"
        await add_active(app, pilot, echo_spec())
        await wait_until(pilot, lambda: harness.state_path.exists(), what="new state saved")


async def test_state_saved_on_every_change(harness: Harness) -> None:
    app = harness.app()

    def saved() -> list[dict[str, Any]]:
        if not harness.state_path.exists():
            return []
        return list(yaml.safe_load(harness.state_path.read_text())["forwards"])

    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        fid = await add_active(app, pilot, echo_spec())
        await wait_until(pilot, lambda: [f["running"] for f in saved()] == [True], what="saved")
        await press(pilot, "space")
        await wait_until(pilot, lambda: [f["running"] for f in saved()] == [False], what="stop")
        await app.engine.remove(fid)
        await wait_until(pilot, lambda: saved() == [], what="removal saved")


async def test_several_ports_marked_with_tab_become_several_forwards(harness: Harness) -> None:
    app = harness.app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        screen = await open_picker_to_ports(pilot, "api")
        assert [o[4:].split()[0] for o in options(app)] == ["443/TCP", "9090/TCP"]
        await press(pilot, "tab", "tab")  # each tab marks one and moves on
        assert options(app)[0].startswith("[x]") and options(app)[1].startswith("[x]")
        await press(pilot, "enter")
        assert screen.step == "local" and [p.port for p in screen.ports] == [443, 9090]
        first, second = reserved_port(), reserved_port()
        screen.query_one("#local-443", Input).value = str(first)
        screen.query_one("#local-9090", Input).value = str(second)
        await settle(pilot)
        await press(pilot, "enter")
        await wait_until(
            pilot,
            lambda: (
                sorted(s.local_port for s in app.engine.snapshot()) == sorted([first, second])
                and all(s.state is ForwardState.ACTIVE for s in app.engine.snapshot())
            ),
            what="two forwards active",
        )
        assert sorted((s.spec.target, s.spec.remote_port) for s in app.engine.snapshot()) == [
            ("svc/api", 443),
            ("svc/api", 9090),
        ]
        await press(pilot, "enter")  # enter on a row opens its log
        assert isinstance(app.screen, LogScreen)


async def test_ctrl_c_quits_even_from_the_picker_and_saves(harness: Harness) -> None:
    app = harness.app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        port = reserved_port()
        await add_active(app, pilot, echo_spec(port))
        await press(pilot, "n")
        assert isinstance(app.screen, NewForwardScreen)
        await pilot.press("ctrl+c")
        await wait_until(pilot, lambda: app.return_code == 0, what="exit")
    assert refused(port)
    saved = yaml.safe_load(harness.state_path.read_text())["forwards"]
    assert [(f["local_port"], f["running"]) for f in saved] == [(port, True)]


async def test_filter_that_matches_nothing_says_so(harness: Harness) -> None:
    app = harness.app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await press(pilot, "n", "enter", "enter", "enter")
        await type_text(pilot, "zzz")
        assert options(app) == [] and status(app) == "Nothing matches “zzz”."
        await press(pilot, "backspace", "backspace", "backspace")
        # dns has UDP ports only: listed, not selectable
        assert status(app) == "5 of 6 services selectable" and len(options(app)) == 6


async def test_edit_to_a_non_loopback_address_warns(harness: Harness) -> None:
    app = harness.app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        fid = await add_active(app, pilot, echo_spec())
        port = app.engine.get(fid).local_port  # what it bound (asked for 0)
        await press(pilot, "e")
        screen = app.screen
        assert isinstance(screen, EditScreen)
        screen.query_one("#edit-port", Input).value = str(reserved_port())
        screen.query_one("#edit-address", Input).value = "127.0.0.1,0.0.0.0"
        await settle(pilot)
        check = str(screen.query_one("#edit-port-check", Static).render())
        assert check.startswith("✓ ") and "on 127.0.0.1, 0.0.0.0" in check
        assert "0.0.0.0 is reachable from other machines" in check
        await press(pilot, "escape")
        assert app.screen is app.dashboard
        assert app.engine.snapshot()[0].local_port == port  # cancelled: unchanged


async def test_undeclared_pod_port_can_be_typed(harness: Harness) -> None:
    app = harness.app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await press(pilot, "n", "enter", "enter")
        await type_text(pilot, "pod")
        await press(pilot, "enter")
        await type_text(pilot, "toolbox")
        await press(pilot, "enter")
        screen = app.screen
        # One declared port: straight to the local step; esc shows it, to type another.
        assert isinstance(screen, NewForwardScreen) and screen.step == "local"
        await press(pilot, "escape")
        assert screen.step == "port"
        assert options(app) == ["[ ]  7000/TCP   shell       "]
        await type_text(pilot, "7001")
        assert options(app)[0] == "[ ]  7001/TCP   -            not declared in the spec"
        await press(pilot, "tab")  # mark it, then the declared one too
        await press(pilot, "backspace", "backspace", "backspace", "backspace")
        assert options(app) == [
            "[ ]  7000/TCP   shell       ",
            "[x]  7001/TCP   -            not declared in the spec",
        ]
        screen.query_one("#choices", OptionList).highlighted = 0
        await press(pilot, "tab", "enter")
        assert screen.step == "local" and sorted(p.port for p in screen.ports) == [7000, 7001]


async def test_a_session_that_cannot_be_saved_is_reported(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    import errno

    from portfwd.store import state

    def full_disk(path: object, text: str) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(state, "write_atomic", full_disk)
    app = harness.app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        fid = await add_active(app, pilot, echo_spec())
        expected = (
            f"cannot save the session to {harness.state_path}: No space left on device; "
            "fix it (space, permissions) and changes are saved again"
        )
        await wait_until(
            pilot,
            lambda: expected in app.toasts,
            what="save error toast",
        )
        assert row(app, fid)["status"] == "● active"  # the forward is not affected


async def test_error_channel_text_reaches_the_log_view(harness: Harness) -> None:
    app = harness.app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        fid = await add_active(app, pilot, echo_spec(target="pod/toolbox", remote=7000))
        port = app.engine.get(fid).local_port  # what it bound (asked for 0)
        await harness.sandbox.set_backend_refusing("demo", "toolbox", 7000, True)
        await press(pilot, "l")
        screen = app.screen
        assert isinstance(screen, LogScreen) and screen.forward_id == fid
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"hello\n")
        with contextlib.suppress(OSError):
            await asyncio.wait_for(reader.read(), 20)  # the forward closes this connection
        writer.close()

        def shown() -> str:
            return "\n".join(line.text for line in screen.query_one("#log").lines)

        await wait_until(pilot, lambda: "connection refused" in shown(), what="kubelet text")
        entry = next(e for e in app.engine.logs(fid) if "connection refused" in e.message)
        assert entry.level >= LogLevel.WARNING
        assert f"{entry.level.name:<7} " + entry.message[:40] in shown().replace("\n", "")


async def test_start_refuses_a_local_port_typed_after_its_last_check(harness: Harness) -> None:
    app = harness.app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        screen = await open_picker_to_ports(pilot, "echo")
        await press(pilot, "enter")
        box = screen.query_one("#local-80", Input)
        box.value = str(reserved_port())
        await settle(pilot)
        assert not screen.query_one("#start", Button).disabled
        box.value += "x"  # enter arrives before this key's check has run
        screen.query_one(LocalPortForm).start()
        assert app.screen is screen and not app.engine.snapshot()
        assert app.toasts[-1] == "checking the local port…"
        await settle(pilot)
        assert str(screen.query_one("#check-80", Static).render()).startswith("✖ ")


async def test_picker_calls_out_a_non_loopback_address_once(harness: Harness) -> None:
    app = harness.app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        screen = await open_picker_to_ports(pilot, "api")
        await press(pilot, "tab", "tab", "enter")  # both ports: two check lines
        screen.query_one("#local-443", Input).value = str(reserved_port())
        screen.query_one("#local-9090", Input).value = str(reserved_port())
        screen.query_one("#local-address", Input).value = "127.0.0.1,0.0.0.0"
        await settle(pilot)
        shown = [str(w.render()) for w in screen.query("#local-step Static")]
        warnings = [line for line in shown if "reachable from other machines" in line]
        assert warnings == ["⚠ 0.0.0.0 is reachable from other machines"]
        assert sum(line.startswith("✓ ") for line in shown) == 2
