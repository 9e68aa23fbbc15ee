"""Forwards that fail over and over do not disturb the others."""

from __future__ import annotations

import asyncio

import pytest

from portfwd.engine.events import ForwardChanged
from portfwd.engine.model import ForwardSpec, ForwardState

from .conftest import (
    FAKE_MB,
    FAULT_TOPOLOGY,
    FLAKY,
    ManagerFactory,
    SandboxFactory,
    echo_big,
    eventually,
)

GOOD = 40


@pytest.mark.timeout(120)
async def test_ten_churning_forwards_do_not_disturb_forty(
    make_sandbox: SandboxFactory, make_manager: ManagerFactory
) -> None:
    sandbox = await make_sandbox(topology=FAULT_TOPOLOGY)
    mgr = make_manager(kubeconfig=str(sandbox.kubeconfig_path))
    sub = mgr.subscribe(maxsize=100_000)
    flaky = [
        await mgr.add(ForwardSpec(target=f"pod/flaky-{i}", remote_port=9000, namespace="f"))
        for i in range(FLAKY)
    ]
    targets: list[tuple[str, int | str]] = [
        ("svc/trio", 80),
        ("deploy/trio", "echo"),
        ("svc/solo", "echo"),
        ("deploy/solo", 9000),
    ]
    good = []
    for i in range(GOOD):
        target, port = targets[i % len(targets)]
        good.append(await mgr.add(ForwardSpec(target=target, remote_port=port, namespace="f")))
    for fid in flaky + good:
        assert mgr.get(fid).state is ForwardState.ACTIVE, mgr.get(fid).reason

    stop = asyncio.Event()

    def all_in(state: ForwardState) -> bool:
        return all(mgr.get(f).state is state for f in flaky)

    async def churn() -> int:
        """Flip every flaky pod not Ready, wait until their forwards say RECONNECTING, flip
        them back, wait until ACTIVE; again, until the transfers end (at least twice)."""
        cycles = 0
        while not stop.is_set() or cycles < 2:
            for i in range(FLAKY):
                await sandbox.set_pod_ready("f", f"flaky-{i}", False)
            await eventually(lambda: all_in(ForwardState.RECONNECTING), 30)
            for i in range(FLAKY):
                await sandbox.set_pod_ready("f", f"flaky-{i}", True)
            await eventually(lambda: all_in(ForwardState.ACTIVE), 30)
            cycles += 1
        return cycles

    churner = asyncio.create_task(churn())
    try:
        results = await asyncio.gather(
            *(echo_big(mgr.get(fid).local_port, FAKE_MB, seed=n) for n, fid in enumerate(good)),
            return_exceptions=True,
        )
    finally:
        stop.set()
        cycles = await asyncio.wait_for(churner, 60)
    assert results == [True] * GOOD, results

    reconnecting: dict[str, int] = dict.fromkeys(flaky + good, 0)
    while (event := sub.get_nowait()) is not None:
        if isinstance(event, ForwardChanged) and event.snapshot.state is ForwardState.RECONNECTING:
            reconnecting[event.snapshot.id] += 1
    print(f"{cycles} churn cycles; reconnecting episodes: {[reconnecting[f] for f in flaky]}")
    assert all(reconnecting[f] >= 2 for f in flaky), reconnecting  # they did churn
    assert all(reconnecting[f] == 0 for f in good)
    for fid in good:
        snap = mgr.get(fid)
        assert snap.state is ForwardState.ACTIVE and snap.stats.errors == 0, snap
