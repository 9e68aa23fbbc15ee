"""An agent adds a lazy forward: it answers at once, idle and ready, and the first connection
gets its bytes (the tunnel opened on use)."""

from __future__ import annotations

from pathlib import Path

import pytest

from portfwd.sandbox.cluster import SandboxCluster
from tests.daemon.test_cli import echo_through

pytest.importorskip("mcp")

from .test_mcp_stdio import call, mcp_session

pytestmark = pytest.mark.timeout(120)


async def test_an_agent_adds_a_lazy_forward(sandbox: SandboxCluster, tmp_path: Path) -> None:
    async with mcp_session(sandbox, tmp_path) as session:
        added = await call(
            session, "add_forward", target="svc/echo", ports=[":80"], name="lz", lazy=True
        )
        [fwd] = added["forwards"]
        assert (fwd["name"], fwd["state"], fwd["ready"]) == ("lz", "idle", True)
        assert sandbox.portforward_requests == 0
        await echo_through(fwd["port"])
        [listed] = (await call(session, "list_forwards"))["forwards"]
        assert listed["state"] in ("active", "idle")
