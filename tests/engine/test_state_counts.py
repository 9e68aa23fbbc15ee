"""The daemon's hello counts forwards by state without building their snapshots."""

from __future__ import annotations

from portfwd.engine.manager import Manager
from portfwd.engine.model import ForwardSpec


async def test_state_counts_match_the_snapshots() -> None:
    manager = Manager(kubeconfig="/nonexistent/kubeconfig", detect_wake=False)
    try:
        for port in (8080, 8081):
            spec = ForwardSpec(target="svc/web", remote_port=port, namespace="demo")
            await manager.add(spec, start=False)
        counts: dict[str, int] = {}
        for snap in manager.snapshot():
            counts[snap.state.value] = counts.get(snap.state.value, 0) + 1
        assert manager.state_counts() == counts == {"stopped": 2}
    finally:
        await manager.shutdown()
