"""An MCP client that disconnects in the middle of a call (issue 20, bad input): the call is
held open by an API server that accepts and never answers, the client goes away, and the
server ends cleanly (no traceback) while the daemon and its forwards carry on; the next agent
is served as before."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import yaml

from portfwd.sandbox.cluster import SandboxCluster
from tests.daemon.conftest import DaemonProcess, dirs  # noqa: F401
from tests.daemon.test_cli import (  # noqa: F401
    add_echo,
    echo_through,
    forward_named,
    portfwd,
    running,
)

pytest.importorskip("mcp")

from .test_mcp_stdio import call, mcp_session

pytestmark = pytest.mark.timeout(150)


@contextlib.asynccontextmanager
async def black_hole() -> AsyncIterator[tuple[int, asyncio.Event]]:
    """A TCP server that accepts and never says a word: (its port, set once one connected)."""
    connected = asyncio.Event()
    held: list[asyncio.StreamWriter] = []

    async def hold(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)
        connected.set()

    server = await asyncio.start_server(hold, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1], connected
    finally:
        for writer in held:
            writer.close()
        server.close()
        await server.wait_closed()


def with_hole(sandbox: SandboxCluster, port: int, path: Path) -> Path:
    """The sandbox's kubeconfig plus a context `hole` whose API server is the black hole."""
    config = yaml.safe_load(sandbox.kubeconfig_path.read_text())
    first = config["contexts"][0]["context"]
    cluster = next(c for c in config["clusters"] if c["name"] == first["cluster"])["cluster"]
    config["clusters"].append(
        {"name": "hole", "cluster": {**cluster, "server": f"https://127.0.0.1:{port}"}}
    )
    config["contexts"].append({"name": "hole", "context": {**first, "cluster": "hole"}})
    path.write_text(yaml.safe_dump(config))
    path.chmod(0o600)
    return path


async def test_a_client_gone_mid_call_leaves_server_and_daemon_fine(
    running: DaemonProcess,  # noqa: F811
    sandbox: SandboxCluster,
    tmp_path: Path,
) -> None:
    kept = await portfwd(*add_echo("--name", "kept"))
    assert kept.code == 0, kept
    port = (await forward_named("kept"))["bound"][0][1]

    async with black_hole() as (hole_port, connected):
        kubeconfig = with_hole(sandbox, hole_port, tmp_path / "kubeconfig")
        async with mcp_session(sandbox, tmp_path, "--kubeconfig", str(kubeconfig)) as session:
            stuck = asyncio.ensure_future(
                session.call_tool(
                    "add_forward", {"target": "svc/echo", "ports": [":80"], "context": "hole"}
                )
            )
            await asyncio.wait_for(connected.wait(), 60)  # the call is in flight, waiting
            assert not stuck.done()
            stuck.cancel()
            await asyncio.gather(stuck, return_exceptions=True)
        # The session closed mid-call; mcp_session asserts the server said no traceback.

    # The daemon carries on: it answers, and its forward still carries bytes.
    assert (await forward_named("kept"))["state"] == "active"
    await echo_through(port)

    # The next agent is served as before.
    async with mcp_session(sandbox, tmp_path) as session:
        listed = {f["name"]: f for f in (await call(session, "list_forwards"))["forwards"]}
        assert listed["kept"]["state"] == "active"
        # The add it was making is the daemon's now (the agent's cleanup went with it): it
        # shows what happened, and holds no port.
        [half] = [f for name, f in listed.items() if name != "kept"]
        assert half["state"] in ("starting", "error") and half["context"] in ("", "hole"), half
        added = await call(session, "add_forward", target="svc/echo", ports=[":80"], name="next")
        await echo_through(added["forwards"][0]["port"])
