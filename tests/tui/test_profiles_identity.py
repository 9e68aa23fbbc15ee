"""Issue 18 §2: the profiles view and the Group column match forwards by what they are, not by
name. The demo's own profile started from `p` on the demo's seeded forwards starts nothing
twice; a `:80` entry matches whatever port its forward got; a name another profile gives a
different target is no match; `j`/`k`/`g`/`G` move in the view as on the dashboard."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from textual.pilot import Pilot

from portfwd.demo import DEMO_CONTEXT, DEMO_NAMESPACE, DEMO_PROFILES, second_cluster_seed
from portfwd.demo import demo_seed as first_cluster_seed
from portfwd.engine.catalog import KubeCatalog
from portfwd.engine.manager import Manager
from portfwd.engine.model import ForwardSpec, ForwardState
from portfwd.sandbox.fleet import SandboxFleet
from tests.tui.conftest import Harness, RecordingApp
from tests.tui.helpers import settle, wait_until
from tests.tui.test_app import SIZE, echo_spec, press
from tests.tui.test_profiles_view import open_view, write_file

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "config"
    path.mkdir(exist_ok=True)
    monkeypatch.setenv("PORTFWD_CONFIG_DIR", str(path))
    return path


def seeds() -> list[ForwardSpec]:
    """The demo's seeded forwards (unnamed), on ports the kernel picks."""
    both = first_cluster_seed() + second_cluster_seed()
    return [replace(s, local_port=0) for s in both]


def demo_app(fleet: SandboxFleet, manager: Manager) -> RecordingApp:
    return RecordingApp(
        manager,
        catalog=KubeCatalog(manager.clients, kubeconfig=str(fleet.kubeconfig_path)),
        context=DEMO_CONTEXT,
        cluster=DEMO_CONTEXT,
        namespace=DEMO_NAMESPACE,
    )


async def all_settled(pilot: Pilot[Any], manager: Manager, count: int) -> None:
    def done() -> bool:
        snaps = manager.snapshot()
        return len(snaps) == count and all(
            s.state is not ForwardState.STARTING for s in snaps if s.spec.target != "svc/crashy"
        )

    await wait_until(pilot, done, what=f"{count} forwards settled")


async def test_the_demo_profile_started_from_p_never_duplicates_the_seeded_forwards(
    sandbox_pair: SandboxFleet, config: Path
) -> None:
    write_file(config / "profiles.yaml", DEMO_PROFILES)
    manager = Manager(kubeconfig=str(sandbox_pair.kubeconfig_path), detect_wake=False)
    try:
        app = demo_app(sandbox_pair, manager)
        async with app.run_test(size=SIZE) as pilot:
            await settle(pilot)
            for spec in seeds():
                await asyncio.wait_for(manager.add(spec, start=True), 30)
            await all_settled(pilot, manager, 5)
            screen = await open_view(pilot)
            # The four seeded forwards the profile names run, on ports the kernel chose.
            await wait_until(pilot, lambda: screen.counts()["demo"] == "4/4", what="4/4")
            assert screen.counts()["demo / second-cluster"] == "2/2"
            web = next(s for s in manager.snapshot() if s.spec.target == "svc/web")
            await manager.stop(web.id)
            await wait_until(pilot, lambda: screen.counts()["demo"] == "3/4", what="3/4")
            screen.select_row("demo")
            await press(pilot, "enter")  # starts web again, adds nothing
            await wait_until(pilot, lambda: screen.counts()["demo"] == "4/4", what="4/4 again")
            assert len(manager.snapshot()) == 5, [s.spec for s in manager.snapshot()]
            said = [t for t in app.toasts if t.startswith("starting demo")]
            assert said == ["starting demo (1 forward(s)); already running: api, echo-2, web-2"]
            # And the group of the other cluster, started twice, is left as it runs.
            screen.select_row("demo", "second-cluster")
            before = len(app.toasts)
            await press(pilot, "enter")  # all active: this stops them
            await wait_until(
                pilot, lambda: screen.counts()["demo / second-cluster"] == "0/2", what="0/2"
            )
            await press(pilot, "enter")
            await wait_until(
                pilot, lambda: screen.counts()["demo / second-cluster"] == "2/2", what="2/2"
            )
            assert len(manager.snapshot()) == 5
            again = "starting demo / second-cluster (2"
            assert any(t.startswith(again) for t in app.toasts[before:])
    finally:
        await asyncio.wait_for(manager.shutdown(), 10)


COLLIDING = """\
profiles:
  demo:
    defaults: {{context: sandbox, namespace: demo}}
    forwards:
      - {{name: api, target: deploy/echo, ports: ["{fixed}:80"]}}
    groups:
      backend: [api]
  mine:
    defaults: {{context: sandbox, namespace: demo}}
    forwards:
      - {{name: echo-80, target: svc/echo, ports: [":80"]}}
      - {{name: api, target: svc/web, ports: [":80"]}}
"""


async def test_names_are_labels_in_the_view_and_the_group_column(
    harness: Harness, config: Path
) -> None:
    """An import named `mine`'s forwards as portfwd names them (`echo-80`, `api`); `demo`
    calls another target `api`. A running svc/echo on whatever port counts for `mine`, and
    the forward named `api` (deploy/echo) is not svc/web nor labelled as `mine`'s."""
    from tests.support.ports import reserved_port
    from tests.tui.test_app import row

    fixed = reserved_port()
    write_file(config / "profiles.yaml", COLLIDING.format(fixed=fixed))
    app = harness.app()
    async with app.run_test(size=(200, 40)) as pilot:
        await settle(pilot)
        echo = await app.engine.add(echo_spec(), start=True)  # unnamed, a free port
        api = await app.engine.add(
            ForwardSpec(
                target="deploy/echo",
                remote_port=80,
                local_port=fixed,
                namespace="demo",
                context="sandbox",
                name="api",
            ),
            start=True,
        )
        screen = await open_view(pilot)
        await wait_until(pilot, lambda: screen.counts()["mine"] == "1/2", what="mine 1/2")
        assert screen.counts()["demo"] == "1/1"
        screen.select_row("mine")
        await press(pilot, "enter")
        # svc/web named api clashes with the running deploy/echo named api: one line, no start
        await wait_until(
            pilot, lambda: any("the name is already used" in t for t in app.toasts), what="clash"
        )
        (clash,) = [t for t in app.toasts if "the name is already used" in t]
        assert clash.startswith("api: the name is already used by forward "), clash
        assert "deploy/echo 80" in clash and "not svc/web 80" in clash, clash
        assert len(app.engine.snapshot()) == 2
        await press(pilot, "escape")
        await wait_until(pilot, lambda: row(app, api).get("group") == "demo/backend", what="api")
        assert row(app, echo)["group"] == "mine"


async def test_j_k_g_G_move_in_the_profiles_view(harness: Harness, config: Path) -> None:
    write_file(config / "profiles.yaml", COLLIDING.format(fixed=1))
    app = harness.app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        screen = await open_view(pilot)

        def at() -> str | None:
            row = screen.selected_row
            return row.label if row else None

        assert at() == "demo"
        await press(pilot, "j")
        assert at() == "demo / backend"
        await press(pilot, "G")
        assert at() == "mine"
        await press(pilot, "k")
        assert at() == "demo / backend"
        await press(pilot, "g")
        assert at() == "demo"
        assert app.engine.snapshot() == []  # moving started nothing


async def test_s_saves_a_free_port_as_free_and_skips_forwards_in_error(
    harness: Harness, config: Path
) -> None:
    """Issue 18 §6: the profiles view's `s` writes `:80` for a forward the user gave a free
    port (not the port it happened to get) and leaves out one in error, saying so."""
    from textual.widgets import Input

    from portfwd.store.profiles import load_profiles
    from portfwd.tui.screens.profiles import NamePrompt
    from tests.tui.test_app import type_text

    app = harness.app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await app.engine.add(echo_spec(), start=True)  # a free port
        broken = replace(echo_spec(target="svc/nope"), reconnect=False, name="nope")
        await app.engine.add(broken, start=True)
        await wait_until(
            pilot,
            lambda: (
                {s.state for s in app.engine.snapshot()}
                == {ForwardState.ACTIVE, ForwardState.ERROR}
            ),
            what="one active, one in error",
        )
        screen = await open_view(pilot)
        await press(pilot, "s")
        prompt = app.screen
        assert isinstance(prompt, NamePrompt)
        prompt.query_one("#profile-name", Input).value = ""
        await type_text(pilot, "morning")
        await press(pilot, "enter")
        await wait_until(pilot, lambda: "morning" in screen.counts(), what="the new profile")
        assert "not saved, in error: nope" in app.toasts
    (fwd,) = load_profiles(config / "profiles.yaml").profiles["morning"].forwards
    assert (fwd.target, fwd.ports) == ("svc/echo", (":80",))
