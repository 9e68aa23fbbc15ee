"""At 80x24 the table tells rows apart (issue 18 section 4), the Name column and the rename key
(section 2), and mark mode's glyphs (section 6)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC

import pytest

from portfwd.engine.model import ForwardSnapshot, ForwardSpec, ForwardState
from portfwd.tui.app import PortfwdApp
from portfwd.tui.format import context_tag
from tests.tui.fakes import NOW, FakeCatalog, FakeManager, long_error_snapshots
from tests.tui.helpers import screen_lines, screen_text, settle, wait_until

pytestmark = pytest.mark.timeout(60)


def make_app(manager: FakeManager) -> PortfwdApp:
    return PortfwdApp(
        manager,
        catalog=FakeCatalog(),
        context="sandbox",
        cluster="sandbox",
        namespace="demo",
        clock=lambda: NOW,
        tz=UTC,
    )


def https(
    fid: str, target: str, context: str, port: int, name: str | None = None
) -> ForwardSnapshot:
    return ForwardSnapshot(
        id=fid,
        spec=ForwardSpec(
            target=target,
            remote_port=443,
            local_port=port,
            namespace="demo",
            context=context,
            name=name,
        ),
        state=ForwardState.ACTIVE,
        context=context,
        namespace="demo",
        pod="x",
        remote_port=8443,
        port_name="https",
        bound=(("127.0.0.1", port),),
        started_at=NOW - 600,
    )


def two_clusters() -> list[ForwardSnapshot]:
    return [
        https("a", "svc/crashy-frontend", "sandbox", 8443),
        https("b", "deploy/payments-api", "sandbox", 8444),
        https("c", "svc/crashy-frontend", "kind-staging", 9443),
    ]


def row(app: PortfwdApp, *parts: str) -> str:
    found = [line for line in screen_lines(app) if all(p in line for p in parts)]
    assert found, f"no row with {parts}:\n{screen_text(app)}"
    return found[0]


async def test_at_80_columns_targets_and_contexts_show_whole_and_remote_gives_way() -> None:
    app = make_app(FakeManager(two_clusters()))
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        # Before: `svc/cra…` and `deploy/…` while Remote spent 20 cells on its decoration.
        first = row(app, "svc/crashy-frontend", "sandbox ")
        other = row(app, "svc/crashy-frontend", "kind-staging")
        assert first != other
        second = row(app, "deploy/payments-api", "sandbox ")
        assert "(https)" not in first + second + other  # the detail pane has it whole
        assert "443" in first


EKS = "arn:aws:eks:eu-west-1:123456789012:cluster/"


@pytest.mark.parametrize(
    ("name", "tag"),
    [
        (EKS + "payments-prod", "payments-prod"),
        ("arn:aws-us-gov:eks:us-gov-west-1:123456789012:cluster/gov", "gov"),
        ("ci-bot@staging-eu.eu-west-1.eksctl.io", "staging-eu"),
        ("gke_my-project_europe-west1-b_prod_blue", "prod_blue"),
        ("default/api-crc-testing:6443/kubeadmin", "api-crc-testing"),
        ("kind-dev", "kind-dev"),
        ("arn:aws:iam::123456789012:role/x", "arn:aws:iam::123456789012:role/x"),
    ],
)
def test_a_context_tag_is_the_clusters_own_name(name: str, tag: str) -> None:
    assert context_tag(name) == tag


async def test_two_eks_clusters_at_80_columns_read_by_their_names() -> None:
    """Two ARNs cut in the middle read `arn:…prod` at best; the tag is the cluster's name,
    and the detail pane says the whole ARN."""
    snaps = [
        https("a", "svc/crashy-frontend", EKS + "payments-prod", 8443),
        https("b", "svc/crashy-frontend", EKS + "payments-staging", 9443),
    ]
    app = make_app(FakeManager(snaps))
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        assert row(app, "svc/crashy-frontend", "payments-prod ") != row(
            app, "svc/crashy-frontend", "payments-staging"
        )
        assert "arn:aws" not in "\n".join(
            line for line in screen_lines(app) if "svc/crashy-frontend" in line
        )
    app = make_app(FakeManager(snaps))
    async with app.run_test(size=(200, 50)) as pilot:
        await settle(pilot)
        assert f"({EKS}payments-prod)" in screen_text(app)  # the detail pane: all of it


async def test_no_header_cell_is_cut_at_80_columns() -> None:
    app = make_app(FakeManager(long_error_snapshots()))
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        head = next(line for line in screen_lines(app) if "Status" in line)
        assert "Last error" in head and "…" not in head, head


async def test_the_context_column_shows_only_with_more_than_one_context() -> None:
    manager = FakeManager(two_clusters()[:2])
    app = make_app(manager)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        assert "Context" not in screen_text(app)
        manager.set(two_clusters()[2])
        await wait_until(pilot, lambda: "kind-staging" in screen_text(app), what="the tag")
        assert "Context" in screen_text(app)


async def test_the_name_column_shows_where_there_is_room_and_the_detail_pane_always() -> None:
    snaps = [replace(s, reason="") for s in two_clusters()]
    snaps[0] = replace(snaps[0], spec=replace(snaps[0].spec, name="frontend"))
    app = make_app(FakeManager(snaps))
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        assert "Name" not in app.dashboard.table.shown_keys
        assert "name frontend" in screen_text(app)  # the detail pane of the selected row
    app = make_app(FakeManager(snaps))
    async with app.run_test(size=(200, 30)) as pilot:
        await settle(pilot)
        assert "name" in app.dashboard.table.shown_keys
        assert "frontend" in row(app, "svc/crashy-frontend", "sandbox ")
        assert " b " in row(app, "deploy/payments-api")  # no name: its id, what `stop` takes


async def test_rename_key_renames_through_the_engine() -> None:
    manager = FakeManager(two_clusters())
    app = make_app(manager)
    async with app.run_test(size=(120, 30)) as pilot:
        await settle(pilot)
        await pilot.press("R")
        await settle(pilot)
        await pilot.press(*"web-ui", "enter")
        await wait_until(pilot, lambda: manager.get("a").spec.name == "web-ui", what="renamed")
        assert ("update", "a") in manager.calls
        await wait_until(pilot, lambda: "name web-ui" in screen_text(app), what="pane says it")


async def test_rename_refuses_a_name_no_command_could_take() -> None:
    manager = FakeManager(two_clusters())
    app = make_app(manager)
    async with app.run_test(size=(120, 30)) as pilot:
        await settle(pilot)
        await pilot.press("R")
        await settle(pilot)
        await pilot.press(*"no spaces", "enter")
        await settle(pilot)
        assert "not usable" in screen_text(app)
        assert ("update", "a") not in manager.calls
        await pilot.press("escape")
        await settle(pilot)
        assert manager.get("a").spec.name is None


async def test_mark_mode_marked_and_unmarked_rows_differ_by_glyph() -> None:
    app = make_app(FakeManager(two_clusters()))
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        await pilot.press("m")
        await settle(pilot)
        await pilot.press("space")  # marks the first
        await settle(pilot)
        lines = [line for line in screen_lines(app) if "(active)" in line]
        marked = [line for line in lines if "✔" in line]
        assert len(lines) == 3 and len(marked) == 1, "\n".join(lines)
