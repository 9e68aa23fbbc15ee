"""The HTTP request view (`h`) and the pod-log tail of the detail pane (`t`): Pilot tests of
what a user does with them, and SVG snapshots at 80x24 and 200x50 (fixed data, fake engine)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
from textual.pilot import Pilot

from portfwd.engine.model import LogEntry, LogKind, LogLevel
from portfwd.engine.podlogs import PodLogPage
from portfwd.tui.screens.http_log import HttpLogScreen
from portfwd.tui.widgets.pod_log import PodLogView
from tests.support.wait import eventually
from tests.tui.fakes import NOW, FakeManager, mixed_snapshots
from tests.tui.helpers import collapsed, screen_text, settle
from tests.tui.test_snapshots import SnapCompare, make_app, snap

pytestmark = pytest.mark.timeout(60)

SIZES = [(80, 24), (200, 50)]
SIZE_IDS = ["80x24", "200x50"]

REQUESTS = [
    ("a", "127.0.0.1:51000 GET /api/users?page=2 -> 200, 1.5 KiB in 12 ms"),
    ("a", "127.0.0.1:51000 GET /static/app.js -> 200, 88.0 KiB in 3 ms"),
    ("c", "127.0.0.1:51002 POST /login -> 302, 0 B in 40 ms, sent 64 B"),
    ("a", "127.0.0.1:51001 GET /missing -> 404, 19 B in 1 ms"),
    ("a", "HTTP log: TLS: encrypted traffic is not logged"),
]


def http_manager() -> FakeManager:
    manager = FakeManager(mixed_snapshots())
    manager.forwards["a"] = replace(
        manager.forwards["a"], spec=replace(manager.forwards["a"].spec, http_log=True)
    )
    manager.add_log("a", LogEntry(NOW - 60, LogLevel.INFO, "listening on 127.0.0.1:8080"))
    for n, (fid, line) in enumerate(REQUESTS):
        manager.add_log(fid, LogEntry(NOW - 50 + n, LogLevel.INFO, line, LogKind.HTTP))
    return manager


def pod_page(**changes: Any) -> PodLogPage:
    page = PodLogPage(
        lines=(
            "2026-05-28T20:26:00Z sandbox: container echo started on node-a",
            "2026-05-28T20:26:00Z listening on :9000/TCP (echo)",
            "2026-05-28T20:26:40Z GET /healthz 200 \\x1b[31m",
        ),
        next=3,
        pod="echo-5f7c9-abcde",
        container="echo",
        containers=("echo", "istio-proxy"),
    )
    return replace(page, **changes)


async def open_http(pilot: Pilot[Any], *keys: str) -> HttpLogScreen:
    await settle(pilot)
    await pilot.press("h", *keys)
    await settle(pilot)
    screen = pilot.app.screen
    assert isinstance(screen, HttpLogScreen)
    return screen


# -- the HTTP request view -----------------------------------------------------------------


async def test_the_view_shows_one_forwards_requests_latest_first_and_filters_as_you_type() -> None:
    app = make_app(http_manager())
    async with app.run_test(size=(120, 30)) as pilot:
        screen = await open_http(pilot)
        lines = [line for line in screen_text(app).splitlines() if "->" in line or "TLS" in line]
        assert [("TLS" in x, "/missing" in x, "app.js" in x, "users" in x) for x in lines] == [
            (True, False, False, False),
            (False, True, False, False),
            (False, False, True, False),
            (False, False, False, True),
        ]
        assert "/login" not in screen_text(app)  # another forward's
        await pilot.press(*"404")
        await settle(pilot)
        text = screen_text(app)
        assert "/missing" in text and "/api/users" not in text and screen.shown == 1
        await pilot.press("ctrl+o")  # every forward: the other one's request shows
        await settle(pilot)
        await pilot.press("backspace", "backspace", "backspace", *"post")
        await settle(pilot)
        assert "POST /login" in screen_text(app) and "svc/web" in screen_text(app)


async def test_a_new_request_appears_at_the_top_and_escape_clears_then_leaves() -> None:
    manager = http_manager()
    app = make_app(manager)
    async with app.run_test(size=(120, 30)) as pilot:
        screen = await open_http(pilot)
        manager.add_log(
            "a", LogEntry(NOW, LogLevel.INFO, "127.0.0.1:1 DELETE /x -> 204", LogKind.HTTP)
        )
        manager.add_log("a", LogEntry(NOW, LogLevel.INFO, "not an HTTP line", LogKind.NOTE))
        await eventually(lambda: screen.shown == 5, limit=10)
        top = next(x for x in screen_text(app).splitlines() if "->" in x or "TLS" in x)
        assert "DELETE /x -> 204" in top
        assert "not an HTTP line" not in screen_text(app)
        await pilot.press("x", "escape")
        await settle(pilot)
        assert app.screen is screen and screen.filter_text == ""
        await pilot.press("escape")
        await settle(pilot)
        assert app.screen is not screen


async def test_capital_h_turns_the_http_log_on_and_off_for_the_selected_forward() -> None:
    manager = FakeManager(mixed_snapshots())
    app = make_app(manager)
    async with app.run_test(size=(120, 30)) as pilot:
        await settle(pilot)
        await pilot.press("H")
        await settle(pilot)
        await eventually(lambda: manager.get("a").spec.http_log, limit=10)
        assert ("http log on", "a") in manager.calls
        await pilot.press("H")
        await eventually(lambda: not manager.get("a").spec.http_log, limit=10)
        assert ("http log off", "a") in manager.calls


async def test_an_empty_view_says_how_to_turn_the_log_on() -> None:
    app = make_app(FakeManager(mixed_snapshots()))
    async with app.run_test(size=(120, 30)) as pilot:
        await open_http(pilot)
        text = collapsed(screen_text(app))
        assert "No HTTP requests yet" in text and "the HTTP log is off" in text


@pytest.mark.parametrize("size", SIZES, ids=SIZE_IDS)
def test_http_view_snapshot(snap_compare: SnapCompare, size: tuple[int, int]) -> None:
    async def run_before(pilot: Pilot[Any]) -> None:
        await open_http(pilot)

    assert snap(snap_compare, make_app(http_manager()), run_before, size)


@pytest.mark.parametrize("size", SIZES, ids=SIZE_IDS)
def test_http_view_every_forward_filtered_snapshot(
    snap_compare: SnapCompare, size: tuple[int, int]
) -> None:
    async def run_before(pilot: Pilot[Any]) -> None:
        await open_http(pilot, "ctrl+o", *"200")

    assert snap(snap_compare, make_app(http_manager()), run_before, size)


# -- the pod-log tail -------------------------------------------------------------------------


async def open_tail(pilot: Pilot[Any]) -> PodLogView:
    await settle(pilot)
    await pilot.press("t")
    view = pilot.app.screen.query_one(PodLogView)
    await eventually(lambda: view.reads > 0, limit=10)
    await pilot.pause()
    return view


async def test_t_tails_the_pod_log_and_new_lines_follow() -> None:
    manager = FakeManager(mixed_snapshots())
    manager.set_pod_log("a", pod_page())
    app = make_app(manager)
    async with app.run_test(size=(120, 30)) as pilot:
        view = await open_tail(pilot)
        text = screen_text(app)
        assert "Pod log" in text and "pod echo-5f7c9-abcde" in text and "container echo" in text
        assert "GET /healthz 200 \\x1b[31m" in text  # escaped, shown as text
        assert "c: next of echo, istio-proxy" in text
        manager.set_pod_log(
            "a",
            pod_page(
                lines=(*pod_page().lines, "── pod echo-5f7c9-zzzzz (the forward moved) ──", "hi"),
                next=5,
                pod="echo-5f7c9-zzzzz",
            ),
        )
        await eventually(lambda: view.page.pod == "echo-5f7c9-zzzzz", limit=10)
        await pilot.pause()
        text = screen_text(app)
        assert "pod echo-5f7c9-zzzzz" in text and "(the forward moved)" in text
        assert text.count("container echo started") == 1  # the new lines only, once each
        await pilot.press("t")  # off: the details again
        await pilot.pause()
        assert not view.display and view.forward_id is None


async def test_c_switches_to_the_next_container_and_moving_the_cursor_follows_that_forward() -> (
    None
):
    manager = FakeManager(mixed_snapshots())
    manager.set_pod_log("a", pod_page())
    manager.set_pod_log("c", pod_page(pod="web-7d9f-qwert", container="web", containers=("web",)))
    app = make_app(manager)
    async with app.run_test(size=(120, 30)) as pilot:
        view = await open_tail(pilot)
        await pilot.press("c")
        await eventually(lambda: view.container == "istio-proxy" and view.reads > 0, limit=10)
        await pilot.press("down", "down")  # b (starting), then c
        await eventually(lambda: view.forward_id == "c" and view.page.pod != "", limit=10)
        assert view.page.pod == "web-7d9f-qwert"


async def test_dropped_lines_and_a_403_are_said_in_the_heading() -> None:
    manager = FakeManager(mixed_snapshots())
    error = (
        'user "pf-create" may not get pods/log in namespace "demo" (403 Forbidden, context '
        '"sandbox"); ask your cluster admin to grant "get" on pods/log'
    )
    manager.set_pod_log("a", pod_page(dropped=120_000, skipped=34, error=error))
    app = make_app(manager)
    async with app.run_test(size=(200, 40)) as pilot:
        await open_tail(pilot)
        text = collapsed(screen_text(app))
        assert "120,034 lines dropped" in text
        assert 'may not get pods/log in namespace "demo"' in text


@pytest.mark.parametrize("size", SIZES, ids=SIZE_IDS)
def test_pod_log_tail_snapshot(snap_compare: SnapCompare, size: tuple[int, int]) -> None:
    manager = FakeManager(mixed_snapshots())
    manager.set_pod_log("a", pod_page(dropped=1200))

    async def run_before(pilot: Pilot[Any]) -> None:
        await open_tail(pilot)

    assert snap(snap_compare, make_app(manager), run_before, size)
