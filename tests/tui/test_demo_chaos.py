"""`portfwd demo --chaos`: the demo breaks its own pods so a user sees forwards follow them."""

from __future__ import annotations

import asyncio

import pytest

from portfwd.demo import DEMO_NAMESPACE, chaos_monkey
from portfwd.engine.manager import Manager
from portfwd.engine.model import ForwardSpec, ForwardState, LogKind
from portfwd.sandbox.cluster import SandboxCluster

pytestmark = pytest.mark.timeout(60)


async def _settled(manager: Manager, fid: str, pods: set[str]) -> bool:
    """ACTIVE on one of `pods` (the current ones)."""
    snap = manager.get(fid)
    return snap.state is ForwardState.ACTIVE and snap.pod in pods


async def test_chaos_rolls_web_and_kills_api_and_the_forwards_follow(
    sandbox: SandboxCluster,
) -> None:
    manager = Manager(kubeconfig=str(sandbox.kubeconfig_path), detect_wake=False)
    try:
        web = await manager.add(ForwardSpec("svc/web", 80, namespace=DEMO_NAMESPACE))
        api = await manager.add(ForwardSpec("svc/api", 443, namespace=DEMO_NAMESPACE))
        before = {
            "web": set(sandbox.pod_names(DEMO_NAMESPACE, {"app": "web"})),
            "api": set(sandbox.pod_names(DEMO_NAMESPACE, {"app": "api"})),
        }
        said: list[str] = []
        await asyncio.wait_for(chaos_monkey(sandbox, 0.01, rounds=2, announce=said.append), 30)
        # One line per switch, naming what broke (the dashboard toasts them).
        assert said[0] == "chaos: rolling restart of deploy/web; svc/web moves to the new pods"
        (api_pod,) = before["api"]
        assert said[1] == f"chaos: deleted pod {api_pod}; svc/api waits for its replacement"
        assert await sandbox.wait_rollout(DEMO_NAMESPACE, "web", within=30)
        for fid, app in ((web, "web"), (api, "api")):
            async with asyncio.timeout(30):
                while True:
                    now = set(sandbox.pod_names(DEMO_NAMESPACE, {"app": app}))
                    if now.isdisjoint(before[app]) and await _settled(manager, fid, now):
                        break
                    await asyncio.sleep(0.05)
            # It followed: a line says it switched to (or recovered on) another pod.
            assert any(e.kind is LogKind.RECOVERED for e in manager.logs(fid))
    finally:
        await asyncio.wait_for(manager.shutdown(), 10)


async def test_a_chaos_switch_is_a_toast_readable_at_80x24() -> None:
    """Issue 18: with --chaos at 80x24 nothing on screen said what the demo had broken."""
    from portfwd.demo import ChaosToasts
    from portfwd.tui.app import PortfwdApp
    from tests.tui.fakes import FakeCatalog, FakeManager, mixed_snapshots
    from tests.tui.helpers import screen_text, settle, wait_until

    toasts = ChaosToasts()
    toasts("before the app runs: dropped, no error")
    app = PortfwdApp(FakeManager(mixed_snapshots()), catalog=FakeCatalog(), context="sandbox")
    toasts.attach(app)
    async with app.run_test(size=(80, 24), notifications=True) as pilot:
        await settle(pilot)
        toasts("chaos: deleted pod api-6c4d-x1; svc/api waits for its replacement")
        # A toast over the table: its lines, each whole, on screen.
        await wait_until(
            pilot,
            lambda: all(
                part in screen_text(app)
                for part in ("--chaos", "deleted pod api-6c4d-x1;", "svc/api waits for its")
            ),
            what="the toast",
        )
