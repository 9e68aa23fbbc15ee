"""Quick add (`:`) on the real engine and the sandbox: a typed line and a pasted kubectl line
each start a forward that moves bytes; a bad line says why under the prompt and adds nothing;
kinds, names and ports complete from the catalog."""

from __future__ import annotations

import socket
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from textual.pilot import Pilot
from textual.widgets import Input, OptionList

from portfwd.engine.model import ForwardSnapshot, ForwardSpec, ForwardState
from portfwd.errors import InputError
from portfwd.tui.app import PortfwdApp
from portfwd.tui.screens.dashboard import DashboardScreen
from portfwd.tui.screens.picker import NewForwardScreen
from portfwd.tui.screens.quick_add import LineSuggester, QuickAddScreen, parse_line, with_defaults
from portfwd.tui.screens.resources import ResourcesScreen
from tests.support.ports import reserved_port
from tests.tui.conftest import Harness
from tests.tui.fakes import FakeCatalog, FakeManager
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
        port = reserved_port()
        await submit(pilot, f"svc/echo {port}:80")
        assert isinstance(app.screen, DashboardScreen)
        await wait_until(
            pilot,
            lambda: any(s.state is ForwardState.ACTIVE for s in app.engine.snapshot()),
            what="the forward active",
        )
        (snap,) = app.engine.snapshot()
        assert (snap.spec.target, snap.spec.remote_port, snap.spec.local_port) == (
            "svc/echo",
            80,
            port,
        )
        assert (snap.spec.context, snap.spec.namespace) == ("sandbox", "demo")  # the dashboard's
        payload = b"quick" * 400
        assert await connect_echo(port, payload) == payload


async def test_a_typed_line_with_a_probe_starts_a_probed_forward(harness: Harness) -> None:
    """`--probe` and `--probe-interval` as on `portfwd forward`: the forward probes."""
    app = harness.app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await submit(pilot, "svc/echo :80 --probe tcp --probe-interval 2s")
        await wait_until(
            pilot,
            lambda: any(s.health.probe_ok for s in app.engine.snapshot()),
            what="the probe answered",
        )
        (snap,) = app.engine.snapshot()
        assert (snap.spec.probe, snap.spec.probe_interval) == ("tcp", 2.0)


async def test_pasted_kubectl_line_starts_a_forward(harness: Harness) -> None:
    app = harness.app(namespace="default")  # the line's -n wins over the dashboard's
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await submit(
            pilot,
            "kubectl --context sandbox port-forward svc/echo -n demo --address 127.0.0.1 :80",
        )
        await wait_until(
            pilot,
            lambda: any(s.state is ForwardState.ACTIVE for s in app.engine.snapshot()),
            what="the forward active",
        )
        (snap,) = app.engine.snapshot()
        assert (snap.spec.namespace, snap.spec.addresses) == ("demo", ("127.0.0.1",))
        assert await connect_echo(snap.local_port, b"pasted") == b"pasted"  # the one it bound


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
        assert app.engine.snapshot() == []
        await press(pilot, "x")  # typing again clears it
        assert screen.error == ""
        await press(pilot, "escape")
        assert isinstance(app.screen, DashboardScreen)
        assert app.engine.snapshot() == []


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


async def test_rs_completes_and_forwards_as_in_forward(harness: Harness) -> None:
    """`rs/NAME` works in `portfwd forward`; quick add once completed nothing after `rs/`."""
    app = harness.app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        found = await app.catalog.resources("sandbox", "demo", "replicaset")
        name = next(r.name for r in found if r.name.startswith("web-"))
        screen = await open_prompt(pilot)
        box = screen.query_one("#quick-add-input", Input)
        await pilot.press(*"rs/web")
        await wait_until(pilot, lambda: box._suggestion == f"rs/{name}", what="the rs name")
        await press(pilot, "right")
        port = reserved_port()
        await pilot.press(*f" {port}:8080")
        await settle(pilot)
        await press(pilot, "enter")
        await wait_until(
            pilot,
            lambda: any(s.state is ForwardState.ACTIVE for s in app.engine.snapshot()),
            what="the forward active",
        )
        (snap,) = app.engine.snapshot()
        assert (snap.spec.target, snap.local_port) == (f"rs/{name}", port)
        assert snap.pod.startswith(f"{name}-")


async def test_a_target_that_does_not_exist_is_refused_before_adding(harness: Harness) -> None:
    """Issue 18 §5: quick add added it and the row went to error; `portfwd add` and the
    picker refuse it."""
    app = harness.app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await submit(pilot, "svc/nope 18080:80")
        screen = app.screen
        assert isinstance(screen, QuickAddScreen)
        assert screen.error.startswith("svc/nope in demo: "), screen.error
        assert "not found" in screen.error and screen.error.endswith("nothing added")
        assert "\n" not in screen.error
        assert app.engine.snapshot() == []


async def test_a_service_port_it_does_not_have_is_refused(harness: Harness) -> None:
    app = harness.app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await submit(pilot, "svc/echo :81")
        screen = app.screen
        assert isinstance(screen, QuickAddScreen)
        assert screen.error.startswith("svc/echo has no port 81 (ports: "), screen.error
        assert app.engine.snapshot() == []


async def test_a_local_port_in_use_is_refused_before_adding(harness: Harness) -> None:
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen()
    port = holder.getsockname()[1]
    app = harness.app()
    try:
        async with app.run_test(size=SIZE) as pilot:
            await settle(pilot)
            await submit(pilot, f"svc/echo {port}:80")
            screen = app.screen
            assert isinstance(screen, QuickAddScreen)
            assert screen.error == f"local port {port} is in use by another program; nothing added"
            assert app.engine.snapshot() == []
    finally:
        holder.close()


async def test_ctx_and_ns_switch_the_dashboard_and_the_picker_follows() -> None:
    """Issue 18 §3: k9s's `:ctx NAME` / `:ns NAME`; a bad name is one line in the prompt."""
    running = ForwardSnapshot(
        id="old",
        spec=ForwardSpec(target="svc/echo", remote_port=80, context="sandbox", namespace="demo"),
        state=ForwardState.ACTIVE,
        context="sandbox",
        namespace="demo",
    )
    app = PortfwdApp(
        FakeManager([running]),
        catalog=FakeCatalog(),
        context="sandbox",
        cluster="sandbox",
        namespace="demo",
    )
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await submit(pilot, "ctx nope")
        screen = app.screen
        assert isinstance(screen, QuickAddScreen)
        assert screen.error.startswith("no context 'nope' in the kubeconfig (contexts: sandbox")
        await press(pilot, "escape")
        await submit(pilot, "ctx sandbox-viewer")
        assert isinstance(app.screen, DashboardScreen)
        assert (app.context_name, app.default_namespace) == ("sandbox-viewer", "demo")
        assert "context sandbox-viewer" in app.sub_title
        await submit(pilot, "ns kube-system")
        assert app.default_namespace == "kube-system"
        assert "namespace kube-system" in app.sub_title
        await submit(pilot, "ns nope")
        assert isinstance(app.screen, QuickAddScreen)
        assert app.screen.error.startswith("no namespace 'nope' in context sandbox-viewer")
        await press(pilot, "escape")
        # The running forward keeps its context; new ones take the new defaults.
        assert app.engine.get("old").spec.context == "sandbox"
        await press(pilot, "n")
        picker = app.screen
        assert isinstance(picker, NewForwardScreen)
        await wait_until(pilot, lambda: picker.state == "ready", what="contexts")
        await settle(pilot)
        options = picker.query_one("#choices", OptionList)
        assert options.highlighted_option is not None
        assert options.highlighted_option.id == "ctx:sandbox-viewer"
        await press(pilot, "enter")
        await wait_until(pilot, lambda: picker.state == "ready", what="namespaces")
        await settle(pilot)
        assert options.highlighted_option is not None
        assert options.highlighted_option.id == "ns:kube-system"
        await press(pilot, "escape", "escape")
        assert app.screen is app.dashboard
        await press(pilot, "b")  # the browse view lists the new context and namespace
        browse = app.screen
        assert isinstance(browse, ResourcesScreen)
        assert (browse.context, browse.namespace) == ("sandbox-viewer", "kube-system")


async def test_palette_switch_entries_open_the_prompt_with_the_word() -> None:
    app = PortfwdApp(FakeManager([]), catalog=FakeCatalog(), context="sandbox")
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        titles = {c.title: c for c in app.get_system_commands(app.screen)}
        titles["Switch namespace"].callback()
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, QuickAddScreen)
        assert screen.query_one("#quick-add-input", Input).value == "ns "


# -- the parser and the completer, without a terminal ------------------------------------------


@pytest.mark.parametrize(
    ("typed", "suggested"),
    [
        ("s", "svc/"),
        ("d", "deploy/"),
        ("p", "pod/"),
        ("st", "sts/"),
        ("r", "rs/"),
        ("rs/e", "rs/echo"),
        ("rs/echo 4", "rs/echo 443"),
        ("deploy.apps/w", "deploy.apps/web"),
        ("replicasets.apps/web 8", "replicasets.apps/web 80"),
        ("svc/e", "svc/echo"),
        ("svc/echo 4", "svc/echo 443"),
        ("svc/echo 8080:", "svc/echo 8080:80"),
        ("-n demo svc/w", "-n demo svc/web"),
        ("svc/echo 5", None),  # 53 is UDP: not offered
        ("x", None),
        ("svc/echo -n de", "svc/echo -n default"),
        ("svc/echo -n dem", "svc/echo -n demo"),
        ("svc/echo -n kube", "svc/echo -n kube-system"),
        ("svc/echo --context sandbox-v", "svc/echo --context sandbox-viewer"),
        ("svc/echo --context sandbox-limited -n d", None),  # may not list namespaces
        ("svc/echo --kubeconfig k", None),
        ("svc/zzz", None),
        ("c", "ctx "),  # k9s's words, when no kind starts so
        ("n", "ns "),
        ("ctx sandbox-v", "ctx sandbox-viewer"),
        ("ns kube", "ns kube-system"),
        ("context sandbox-l", "context sandbox-limited"),
    ],
)
async def test_suggestions(typed: str, suggested: str | None) -> None:
    suggester = LineSuggester(FakeCatalog(), "sandbox", "demo")
    assert await suggester.get_suggestion(typed) == suggested


def test_short_form_and_defaults() -> None:
    (spec,) = with_defaults(
        parse_line("svc/web 8080:80", set()),
        context="sandbox",
        namespace="demo",
        kubeconfig=None,
        protocol="websocket",
    )
    assert (spec.target, spec.local_port, spec.remote_port) == ("svc/web", 8080, 80)
    assert (spec.context, spec.namespace, spec.protocol) == ("sandbox", "demo", "websocket")
    assert spec.name == "web-80"
    (named,) = parse_line("svc/web 8080:80 -n other --context c", {"web-80"})
    assert (named.context, named.namespace, named.name) == ("c", "other", "web-80-2")


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=80))
def test_any_line_parses_or_says_why(text: str) -> None:
    try:
        specs = parse_line(text, set())
    except InputError as exc:
        assert str(exc) and "\n" not in str(exc)
    else:
        assert specs


async def test_p_and_colon_type_into_the_filter_box(harness: Harness) -> None:
    app = harness.app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await press(pilot, "slash", "p", "colon")
        assert isinstance(app.screen, DashboardScreen)  # neither view opened
        assert app.screen.query_one("#filter", Input).value == "p:"
