"""Hardening (issue 8, item 2): the dashboard never passes hostile bytes to the terminal.

A session-file target holding OSC 52 set the clipboard on every redraw. The real `portfwd`
runs here on a pseudo-terminal, with hostile text from every source at once: a pod name from
the API (table, detail line), the kubelet's error-channel text quoting it (log view), an API
403 message (the error column and detail line), context and namespace names from the session
file that are also Rich markup (`[red]`, `[link=...]`: they must show as typed), a hostile
`--context` (header, toast), and a session file whose target is hostile (the warning toast).
The terminal program's own escape sequences are fine; the attacker's must never appear raw.
"""

from __future__ import annotations

import asyncio
import os
import socket
from dataclasses import replace
from pathlib import Path

import pytest
import yaml

from portfwd.engine.browse import ResourceRow, ResourceView
from portfwd.engine.catalog import ContextChoice, PortChoice, ResourceChoice
from portfwd.engine.model import ForwardState, LogEntry, LogLevel
from portfwd.sandbox.cluster import SandboxCluster
from portfwd.tui.app import PortfwdApp
from tests.hostile import CLEAR, OSC52, forbidding_api, hostile_topology, raw_found
from tests.ptyrun import PtyProcess
from tests.support.cli import PORTFWD
from tests.support.ports import reserved_port
from tests.tui.fakes import FakeCatalog, FakeConnection, FakeLive, FakeManager, mixed_snapshots
from tests.tui.helpers import collapsed, screen_text, settle, wait_until

pytestmark = pytest.mark.timeout(120)

MARKUP_CONTEXT = f"[red]ctx{OSC52}"
MARKUP_NAMESPACE = "[link=https://evil.example]ns\x1b[2JZZ"
HEADER_CONTEXT = f"[b]hdr{OSC52}"


def _dashboard(tmp_path: Path, *args: str) -> PtyProcess:
    env = {"HOME": str(tmp_path / "home"), "PATH": os.environ.get("PATH", "/usr/bin:/bin")}
    return PtyProcess([*PORTFWD, *args], env=env, cols=320, rows=60)


def _state(tmp_path: Path, forwards: list[dict[str, object]]) -> Path:
    cfg = tmp_path / "cfg"
    cfg.mkdir(mode=0o700)
    path = cfg / "state.yaml"
    path.write_text(yaml.safe_dump({"version": 1, "forwards": forwards}))
    path.chmod(0o600)
    return path


async def test_hostile_text_from_every_source_is_shown_escaped(tmp_path: Path) -> None:
    cluster = SandboxCluster(hostile_topology())
    await asyncio.wait_for(cluster.start(), 30)
    port = reserved_port()
    try:
        async with forbidding_api(tmp_path) as hostile_kc:
            state = _state(
                tmp_path,
                [
                    {"id": "evil", "target": "svc/evil", "remote_port": 80, "local_port": port}
                    | {"namespace": "demo", "context": "sandbox", "running": True},
                    {"id": "denied", "target": "svc/web", "remote_port": 80, "running": True}
                    | {"kubeconfig": str(hostile_kc)},
                    {"id": "names", "target": "svc/web", "remote_port": 80, "running": False}
                    | {"namespace": MARKUP_NAMESPACE, "context": MARKUP_CONTEXT},
                ],
            )
            args = ("--kubeconfig", str(cluster.kubeconfig_path), "--state", str(state))
            with _dashboard(tmp_path, *args, "--context", HEADER_CONTEXT) as term:

                def wait(marker: bytes, what: str) -> None:
                    term.read_until(lambda out: marker in out, 45, what)

                await asyncio.to_thread(wait, b"evil-", "the pod name")
                await asyncio.to_thread(wait, b"forbidden: ", "the 403 message")
                await asyncio.to_thread(wait, b"ctx", "the context")
                await asyncio.to_thread(wait, b"evil.example", "the namespace")
                await asyncio.to_thread(wait, b"hdr", "the header")
                with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
                    conn.sendall(b"hello")  # the pod's port refuses: error-channel text
                term.send(b"L")  # the app-wide log
                await asyncio.to_thread(wait, b"to pod evil-", "the kubelet's text in the log")
                term.send(b"\x1b")
                await asyncio.sleep(0.3)  # esc alone is a key once nothing follows it
                term.send(b"q")
                out = await asyncio.to_thread(term.read_to_end, 45)
    finally:
        await asyncio.wait_for(cluster.stop(), 30)
    assert raw_found(out) == []
    # ... and shown escaped, literally (markup in names is not markup), in each place.
    for shown in (
        rb"evil-\x1b]52;c;",  # the pod: table, detail line
        rb"forbidden: \x1b]52;c;",  # the API's 403 message: error column, detail line
        rb"[red]ctx\x1b]52;c;",  # session file: the context cell
        rb"[link=https://evil.example]ns\x1b[2JZZ",  # and the namespace cell
        rb"[b]hdr\x1b]52;c;",  # --context: the header
        rb"to pod evil-\x1b]52;c;",  # the kubelet's error-channel text: the log view
    ):
        assert shown in out, shown
    assert b"\x1b]8;" not in out  # `[link=...]` was not turned into a hyperlink


async def test_a_hostile_session_target_is_shown_escaped_in_the_warning(tmp_path: Path) -> None:
    target = f"svc/x{OSC52}\x1b[2JZZ"
    state = _state(tmp_path, [{"id": "a", "target": target, "remote_port": 80}])
    kc = tmp_path / "kubeconfig"
    kc.write_text("apiVersion: v1\nkind: Config\n")
    with _dashboard(tmp_path, "--kubeconfig", str(kc), "--state", str(state)) as term:
        await asyncio.to_thread(term.read_until, lambda out: b"svc/x" in out, 45, "the target")
        term.send(b"q")
        out = await asyncio.to_thread(term.read_to_end, 45)
    assert raw_found(out) == []
    assert b"left out" in out  # the toast: the entry is left out (issue 16), quoted escaped


class HostileCatalog(FakeCatalog):
    """What a hostile kubeconfig and API server would list in the picker."""

    async def contexts(self) -> list[ContextChoice]:
        return [ContextChoice(f"[red]prod{OSC52}", f"c{CLEAR}", f"[link=https://x]n{OSC52}")]

    async def namespaces(self, context: str) -> list[str]:
        return [f"ns{OSC52}"]

    async def resources(self, context: str, namespace: str, kind: str) -> list[ResourceChoice]:
        return [ResourceChoice(f"web{OSC52}", f"Running{CLEAR}", "1/1", detail=f"d{OSC52}")]

    async def ports(self, context: str, namespace: str, kind: str, name: str) -> list[PortChoice]:
        await self._wait("ports")  # raises what `fail` says
        # Two: with one TCP port the picker skips the port step.
        return [PortChoice(80, f"http{OSC52}", "TCP", f"→ {CLEAR}"), PortChoice(443)]


def terminal_bytes(app: PortfwdApp) -> bytes:
    """The whole screen as the driver would write it to the terminal (a private Textual API:
    the compositor's full update, rendered with the app's console)."""
    update = app.screen._compositor.render_update(full=True)
    return update.render_segments(app.console).encode()


async def test_the_picker_shows_hostile_names_escaped() -> None:
    catalog = HostileCatalog()
    app = PortfwdApp(FakeManager([]), catalog=catalog)
    async with app.run_test(size=(200, 40)) as pilot:
        await settle(pilot)
        await pilot.press("n")
        screens: list[bytes] = []

        def on(step: str) -> bool:
            return bool(app.screen.step == step and app.screen.state == "ready")  # type: ignore[attr-defined]

        for step in ("context", "namespace", "kind", "resource", "port"):
            await wait_until(pilot, lambda step=step: on(step), what=step)
            await settle(pilot)
            screens.append(terminal_bytes(app))
            if step != "port":
                await pilot.press("enter")
        catalog.fail["ports"] = f"forbidden: {OSC52}{CLEAR}"  # the API's error on a step
        await pilot.press("ctrl+r")
        await wait_until(pilot, lambda: app.screen.state == "error", what="the error")  # type: ignore[attr-defined]
        await settle(pilot)
        screens.append(terminal_bytes(app))
    for screen in screens:
        assert raw_found(screen) == []
    everything = b"".join(screens)
    for shown in (
        rb"[red]prod\x1b]52",
        rb"[link=https://x]n\x1b]52",
        rb"web\x1b]52",
        rb"http\x1b]52",
    ):
        assert shown in everything, shown
    assert rb"forbidden: \x1b]52;c;" in screens[-1]


class HostileLiveCatalog(HostileCatalog):
    """What a hostile API server would make the resources view list."""

    async def live_resources(self, context: str, namespace: str) -> FakeLive:
        rows = (
            ResourceRow(
                "service",
                f"web{OSC52}",
                f"1/1{CLEAR}",
                f"ClusterIP{OSC52}",
                True,
                (PortChoice(80, f"http{OSC52}", "TCP", f"→ targetPort {CLEAR}"),),
            ),
            ResourceRow("pod", f"evil-{OSC52}", "0/1", f"CrashLoopBackOff{CLEAR}", False, (), None),
        )
        self.live = FakeLive(ResourceView(rows, errors={"pod": f"pods: denied {OSC52}"}))
        return self.live

    async def node_of(
        self, context: str, namespace: str, pod: str, kubeconfig: str | None = None
    ) -> str:
        return f"node-{OSC52}"


async def test_the_resources_view_the_port_dialog_and_the_detail_pane_escape_hostile_text() -> None:
    snap = replace(
        mixed_snapshots()[0],
        pod=f"evil-{OSC52}{CLEAR}",
        reason=f"forbidden: {OSC52}{CLEAR}",
        state=ForwardState.RECONNECTING,
    )
    manager = FakeManager([snap])
    manager.connections[snap.id] = [
        FakeConnection(f"127.0.0.1:1{OSC52}", f"evil-{CLEAR}", 0.0, 1, 2)
    ]
    manager.log[snap.id] = [LogEntry(0.0, LogLevel.WARNING, f"kubelet said {OSC52}{CLEAR}")]
    app = PortfwdApp(manager, catalog=HostileLiveCatalog(), context=f"[b]ctx{OSC52}")
    screens: list[bytes] = []
    async with app.run_test(size=(200, 50)) as pilot:
        await settle(pilot)
        await pilot.press("i")  # the detail pane, unfolded
        await wait_until(pilot, lambda: "node-" in collapsed(screen_text(app)), what="node")
        await settle(pilot)
        screens.append(terminal_bytes(app))
        await pilot.press("b")
        await wait_until(pilot, lambda: "web" in screen_text(app), what="the resources")
        await settle(pilot)
        screens.append(terminal_bytes(app))
        await pilot.press("f")  # svc web: its one port goes straight to the local step
        await settle(pilot)
        screens.append(terminal_bytes(app))
    for screen in screens:
        assert raw_found(screen) == []
    for shown in (
        rb"evil-\x1b]52",
        rb"forbidden: \x1b]52",
        rb"127.0.0.1:1\x1b]52",
        rb"kubelet said \x1b]52",
        rb"node-\x1b]52",
    ):
        assert shown in screens[0], shown
    for shown in (rb"web\x1b]52", rb"ClusterIP\x1b]52", rb"http\x1b]52", rb"pods: denied \x1b]52"):
        assert shown in screens[1], shown
    assert rb"svc/web\x1b]52" in screens[2]
