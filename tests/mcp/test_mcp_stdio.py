"""`portfwd mcp` driven by the MCP SDK's own client over stdio, against the sandbox: list,
add, bytes through, logs, stop, remove, services, profiles, and bad inputs as tool errors
(the server keeps serving)."""

from __future__ import annotations

import contextlib
import json
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from portfwd.sandbox.cluster import SandboxCluster
from tests.daemon.conftest import DaemonProcess, dirs  # noqa: F401
from tests.daemon.test_cli import echo_through, forwards, refused, running  # noqa: F401

pytest.importorskip("mcp")

from mcp import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client

pytestmark = pytest.mark.timeout(120)


@contextlib.asynccontextmanager
async def mcp_session(
    sandbox: SandboxCluster, tmp_path: Path, *extra: str
) -> AsyncIterator[ClientSession]:
    config = tmp_path / "config"
    config.mkdir(mode=0o700, exist_ok=True)
    params = StdioServerParameters(
        command=sys.executable,
        args=["-m", "portfwd", "mcp", "--kubeconfig", str(sandbox.kubeconfig_path), "-n", "demo",
              *extra],
        env={
            "PORTFWD_CONFIG_DIR": str(config),
            "PORTFWD_RUNTIME_DIR": os.environ["PORTFWD_RUNTIME_DIR"],  # no daemon runs there
            "PYTHONPATH": os.pathsep.join(sys.path),
        },
    )  # fmt: skip
    with (tmp_path / "mcp.stderr").open("w") as errlog:
        async with (
            stdio_client(params, errlog=errlog) as (read, write),
            ClientSession(read, write, read_timeout_seconds=60) as session,
        ):
            await session.initialize()
            yield session
    assert "Traceback" not in (tmp_path / "mcp.stderr").read_text()


async def call(session: ClientSession, tool: str, **args: Any) -> dict[str, Any]:
    result = await session.call_tool(tool, args)
    assert not result.is_error, result.content
    data = result.structured_content
    assert isinstance(data, dict), result
    return data


async def error_of(session: ClientSession, tool: str, **args: Any) -> str:
    result = await session.call_tool(tool, args)
    assert result.is_error, result
    text = result.content[0]
    assert text.type == "text"
    return text.text


async def test_an_agent_lists_adds_reads_logs_and_stops(
    sandbox: SandboxCluster, tmp_path: Path
) -> None:
    async with mcp_session(sandbox, tmp_path) as session:
        tools = {t.name for t in (await session.list_tools()).tools}
        assert tools >= {
            "list_forwards", "add_forward", "start_forward", "stop_forward", "remove_forward",
            "forward_logs", "start_profile", "stop_profile", "list_services", "doctor",
        }  # fmt: skip
        assert await call(session, "list_forwards") == {"forwards": []}

        services = await call(session, "list_services")
        echo = next(s for s in services["services"] if s["name"] == "echo")
        assert echo["ports"][0]["port"] == 80

        added = await call(session, "add_forward", target="svc/echo", ports=[":80"], name="e")
        [fwd] = added["forwards"]
        assert (fwd["name"], fwd["state"], fwd["ready"], fwd["host"]) == (
            "e", "active", True, "127.0.0.1",
        )  # fmt: skip
        await echo_through(fwd["port"])

        [listed] = (await call(session, "list_forwards"))["forwards"]
        assert (listed["name"], listed["port"], listed["namespace"]) == ("e", fwd["port"], "demo")

        logs = await call(session, "forward_logs", forward="e")
        assert any(line["kind"] == "forwarding" for line in logs["lines"]), logs

        stopped = await call(session, "stop_forward", forward="e")
        assert stopped["state"] == "stopped"
        assert await refused(fwd["port"])
        assert (await call(session, "remove_forward", forward="e")) == {"removed": "e"}
        assert await call(session, "list_forwards") == {"forwards": []}


async def test_bad_inputs_are_tool_errors_and_the_server_keeps_serving(
    sandbox: SandboxCluster, tmp_path: Path
) -> None:
    async with mcp_session(sandbox, tmp_path) as session:
        assert "no forward has the name or id 'nope'" in await error_of(
            session, "stop_forward", forward="nope"
        )
        wrong_type = await error_of(session, "add_forward", target="svc/echo", ports=80)
        assert "ports" in wrong_type
        assert await error_of(session, "add_forward", target="svc/echo", ports=[":eighty!"]) == (
            "Error executing tool add_forward: "
            'invalid remote port "eighty!" in ":eighty!": a number 1..65535 or a port name (up '
            "to 15 lowercase letters, digits and '-'); expected [LOCAL:]REMOTE, e.g. 8080:80, "
            "80, :80 or 8443:https"
        ), "the CLI's own message"
        assert "svc/nope" in await error_of(
            session, "add_forward", target="svc/nope", ports=[":80"]
        )
        assert "not a loopback address" in await error_of(
            session, "add_forward", target="svc/echo", ports=[":80"], address="0.0.0.0"
        )
        assert "no profiles file" in await error_of(session, "start_profile", profile="dev")
        assert "out of range" in await error_of(session, "forward_logs", forward="x", lines=0)
        assert await call(session, "list_forwards") == {"forwards": []}, "nothing was added"


async def test_profiles_are_a_resource_and_start_and_stop(
    sandbox: SandboxCluster, tmp_path: Path
) -> None:
    profiles = tmp_path / "profiles.yaml"
    profiles.write_text(
        f"""\
profiles:
  pair:
    defaults: {{kubeconfig: "{sandbox.kubeconfig_path}", namespace: demo, address: 127.0.0.1}}
    forwards:
      - {{name: echo, target: svc/echo, ports: [":80"]}}
      - {{name: web, target: svc/web, ports: [":80"]}}
    groups:
      front: [web]
"""
    )
    profiles.chmod(0o600)
    async with mcp_session(sandbox, tmp_path, "--profiles", str(profiles)) as session:
        read = await session.read_resource("portfwd://profiles")
        doc = json.loads(read.contents[0].text)  # type: ignore[union-attr]
        [pair] = doc["profiles"]
        assert (pair["name"], pair["groups"]) == ("pair", {"front": ["web"]})

        started = await call(session, "start_profile", profile="pair", groups=["front"])
        assert [f["name"] for f in started["forwards"]] == ["web"]
        port = started["forwards"][0]["port"]
        assert not await refused(port)
        assert await call(session, "stop_profile", profile="pair") == {"stopped": ["web"]}
        assert await refused(port)


async def test_with_a_daemon_the_agents_forwards_are_the_daemons(
    running: DaemonProcess,  # noqa: F811
    sandbox: SandboxCluster,
    tmp_path: Path,
) -> None:
    async with mcp_session(sandbox, tmp_path) as session:
        added = await call(session, "add_forward", target="svc/echo", ports=[":80"], name="d")
        [fwd] = added["forwards"]
        await echo_through(fwd["port"])
        [listed] = await forwards()  # `portfwd ls -o json`: the daemon has it
        assert (listed["spec"]["name"], listed["state"]) == ("d", "active")
        assert (await call(session, "stop_forward", forward="d"))["state"] == "stopped"
    [after] = await forwards()  # the agent went away; the daemon keeps it (stopped)
    assert (after["spec"]["name"], after["state"]) == ("d", "stopped")
