"""`portfwd demo`'s first start: seeded forwards show every state within seconds."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path

import pytest

from portfwd.demo import DEMO_CONTEXT, DEMO_NAMESPACE, demo_seed
from portfwd.engine.model import ForwardState
from portfwd.sandbox.fleet import SandboxFleet
from tests.tui.conftest import Harness
from tests.tui.helpers import settle, wait_until

pytestmark = pytest.mark.timeout(60)


def test_seed_targets_the_demo_namespace() -> None:
    seeds = demo_seed()
    assert [(s.target, s.remote_port) for s in seeds] == [
        ("svc/web", 80),
        ("svc/api", 443),
        ("svc/crashy", 80),
    ]
    assert {(s.context, s.namespace, s.kubeconfig) for s in seeds} == {
        (DEMO_CONTEXT, DEMO_NAMESPACE, None)  # no kubeconfig: the next demo's sandbox differs
    }
    assert len({s.local_port for s in seeds}) == 3


async def test_first_start_is_seeded_and_a_later_start_is_not(harness: Harness) -> None:
    seeds = [replace(s, local_port=0) for s in demo_seed()]  # tests bind port 0 only
    app = harness.app(seed=seeds)
    async with app.run_test(size=(160, 30)) as pilot:
        await wait_until(pilot, lambda: app.restored, what="seeded")
        await settle(pilot)
        states = {s.spec.target: s for s in app.engine.snapshot()}
        assert states["svc/web"].state is ForwardState.ACTIVE
        assert states["svc/api"].state is ForwardState.ACTIVE
        # No Ready pod: with auto-reconnect it waits for one (an older engine gave up).
        assert states["svc/crashy"].state in (ForwardState.RECONNECTING, ForwardState.ERROR)
        assert "crashy" in states["svc/crashy"].reason  # why it fails, in the row
        await pilot.press("q")
        await wait_until(pilot, lambda: app.return_code == 0, what="exit")
    app2 = harness.app(seed=seeds)
    async with app2.run_test(size=(160, 30)) as pilot:
        await wait_until(pilot, lambda: app2.restored, what="restored")
        assert len(app2.engine.snapshot()) == 3  # restored, not seeded again
        await pilot.press("q")
        await wait_until(pilot, lambda: app2.return_code == 0, what="exit")


async def test_the_demos_profile_spans_both_clusters_and_its_groups_start(
    sandbox_pair: SandboxFleet, tmp_path: Path
) -> None:
    """The profiles file the demo writes checks out, and each group's forwards run on their
    own cluster of the demo's fleet (what `p` in the demo starts)."""
    from portfwd.demo import write_demo_profiles
    from portfwd.engine.manager import Manager
    from portfwd.store.profiles import load_profiles

    fleet = sandbox_pair
    config = tmp_path / "config"
    write_demo_profiles(config)
    loaded = load_profiles(config / "profiles.yaml")
    assert loaded.problems == [], loaded.problems
    demo = loaded.profiles["demo"]
    assert set(demo.groups) == {"first-cluster", "second-cluster"}
    manager = Manager(kubeconfig=str(fleet.kubeconfig_path), detect_wake=False)
    try:
        for group, context in (("first-cluster", "sandbox"), ("second-cluster", "sandbox-2")):
            for _, spec in demo.specs([group], kubeconfig=None, context=None, namespace=None):
                assert spec.context == context
                fid = await asyncio.wait_for(manager.add(spec, start=True), 30)
                snap = manager.get(fid)
                assert snap.state is ForwardState.ACTIVE, (spec.name, snap.reason)
    finally:
        await asyncio.wait_for(manager.shutdown(), 10)


async def test_the_demo_prints_its_kubeconfig_and_a_kubectl_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Issue 18 §6: the user can poke the demo's clusters with kubectl while it runs."""
    import shlex

    from portfwd import demo
    from portfwd.tui import run as tui_run

    seen: dict[str, str | None] = {}

    async def launch(**kw: object) -> int:
        seen["kubeconfig"] = str(kw["kubeconfig"])
        return 0

    monkeypatch.setattr(tui_run, "launch", launch)
    assert await demo._demo(None, tmp_path, 30.0, "auto", 0.0) == 0
    kubeconfig = seen["kubeconfig"]
    assert kubeconfig is not None
    err = capsys.readouterr().err
    assert f"kubeconfig {shlex.quote(kubeconfig)} (removed when the demo ends)" in err
    assert f"  kubectl --kubeconfig {shlex.quote(kubeconfig)} get pods -A\n" in err
